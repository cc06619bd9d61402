"""Is data loading the bottleneck? Samples/s of the data pipelines next to the training step.

Problem: augmentation runs on the CPU in the DataLoader; if it delivers fewer samples per
second than the optimiser consumes, more workers (or moving augmentation to the GPU) help,
and otherwise they only cost memory and start-up time.
Idea: for the digits and MNIST pipelines (the recipes' batch sizes, with and without the
augmentation list below), time full passes over `Experiment.loader("train")` on both paths:
`data.loader=tensors` (batches cut from the tensors in memory, data/tensor_loader.py) and
torch's DataLoader at 0, 1 and 2 worker processes, worker start-up included, and time the training step of the recipe's
model (`small_cnn`, forward + backward + AdamW) on batches already in memory. The main
process uses one torch thread (each worker uses one too), so on a shared 2-core machine the
comparison is not swamped by thread oversubscription.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
AUGMENT = [{"name": "random_crop", "padding": 2}, {"name": "random_affine", "degrees": 10.0}, {"name": "random_erasing", "p": 0.5}]
PIPELINES = {
    # name: (dataset spec, model widths, batches timed per pass)
    "digits": ({"name": "digits", "batch_size": 32}, [32, 64], 40),
    "mnist": ({"name": "mnist", "batch_size": 128}, [32, 64], 25),
}
# (data.loader, data.num_workers): the tensor path, then the DataLoader at 0, 1 and 2 workers
LOADERS = (("tensors", 0), ("dataloader", 0), ("dataloader", 1), ("dataloader", 2))


def recipe(data: dict, widths: list[int], *, workers: int, augment: list[dict], loader: str = "tensors") -> dict:
    return {
        "name": "bench_dataloader",
        "seed": 0,
        "data": {**data, "loader": loader, "num_workers": workers, "augment": augment},
        "model": {"name": "small_cnn", "widths": widths},
        "optimizer": {"name": "adamw", "lr": 0.003},
        "trainer": {"progress": "off"},
    }


def loader_rate(exp, batches: int) -> float:
    """Samples/s over `batches` batches from a fresh iterator (worker start-up included)."""
    seen = 0
    start = time.perf_counter()
    for i, (x, _) in enumerate(exp.loader("train")):
        seen += len(x)
        if i + 1 == batches:
            break
    return seen / (time.perf_counter() - start)


def step_rate(exp, batches: int) -> float:
    """Samples/s of forward + backward + optimiser step on batches already in memory."""
    import torch

    data = [b for _, b in zip(range(batches), exp.loader("train"))]
    optimizer = exp.build_optimizer()
    exp.task.train()
    for x, y in data[:3]:  # warm-up
        exp.task.training_step((x, y)).loss.backward()
    optimizer.zero_grad()
    seen = 0
    start = time.perf_counter()
    for x, y in data:
        optimizer.zero_grad(set_to_none=True)
        exp.task.training_step((x, y)).loss.backward()
        optimizer.step()
        seen += len(x)
    torch.cuda.synchronize() if torch.cuda.is_available() else None
    return seen / (time.perf_counter() - start)


def main() -> None:
    import torch

    from deepstrata.config import load_recipe
    from deepstrata.experiment import build_experiment

    os.environ.setdefault("DEEPSTRATA_DATA", str(REPO.parent / "shared" / "data"))
    torch.set_num_threads(1)
    load_before = os.getloadavg()[0]
    rows, figures = [], []
    for name, (data, widths, batches) in PIPELINES.items():
        if name == "mnist" and not (Path(os.environ["DEEPSTRATA_DATA"]) / "mnist").is_dir():
            print("skipping mnist: no $DEEPSTRATA_DATA/mnist", flush=True)
            continue
        exp = build_experiment(load_recipe(recipe(data, widths, workers=0, augment=[])))
        step = max(step_rate(exp, batches) for _ in range(2))  # best of two passes
        rows.append((name, "training step (small_cnn, AdamW)", "-", step, 1.0))
        figures.append({"name": f"{name}: training step", "value": round(step), "unit": "samples/s", "note": f"batch {data['batch_size']}, 1 torch thread"})
        for augment in ([], AUGMENT):
            label = "augmented" if augment else "plain"
            for loader, workers in LOADERS:
                exp = build_experiment(load_recipe(recipe(data, widths, workers=workers, augment=augment, loader=loader)))
                rate = max(loader_rate(exp, batches) for _ in range(2))  # best of two passes
                rows.append((name, f"{loader}, {label}", workers, rate, rate / step))
                figures.append({"name": f"{name}: {loader} {label}, {workers} workers", "value": round(rate), "unit": "samples/s", "note": f"{rate / step:.1f}x the training step"})
                print(f"{name} {loader} {label} workers={workers}: {rate:.0f} samples/s ({rate / step:.1f}x the step)", flush=True)
    table = "| pipeline | loader, augmentation | workers | samples/s | x training step |\n|---|---|---|---|---|\n" + "\n".join(
        f"| {p} | {w} | {k} | {r:.0f} | {x:.1f} |" for p, w, k, r, x in rows
    )
    verdicts = []
    for name in PIPELINES:
        aug = [r for r in rows if r[0] == name and r[1].endswith("augmented")]
        if aug:
            best = max(aug, key=lambda r: r[3])
            verdicts.append(f"{name}: augmented loading {'IS' if best[4] < 1 else 'is not'} the bottleneck (best {best[3]:.0f} samples/s, {best[1].split(',')[0]} at {best[2]} workers = {best[4]:.1f}x the step)")
        for label in ("plain", "augmented"):
            by = {r[1].split(",")[0] + str(r[2]): r[3] for r in rows if r[0] == name and r[1].endswith(label)}
            if "tensors0" in by and "dataloader0" in by:
                verdicts.append(f"{name} {label}: the tensor path is {by['tensors0'] / by['dataloader0']:.1f}x the DataLoader's samples/s (both in this process)")
    load = f"load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after (1-minute, {os.cpu_count()} cores)"
    print("; ".join(verdicts) + "; " + load, flush=True)
    emit(
        "dataloader",
        ".venv/bin/python benchmarks/run_all.py --only dataloader",
        figures,
        table=table + "\n\n" + "\n".join(f"- {v}" for v in verdicts) + f"\n- measured under {load}",
        description="Samples/s of Experiment.loader('train') (worker start-up included) with augmentation "
        "[random_crop pad 2, random_affine 10 deg, random_erasing p 0.5], on the tensor path (data.loader=tensors) and torch's DataLoader at 0/1/2 workers, next to the training step of small_cnn. "
        "Above 1x the step: loading keeps up with training.",
    )


if __name__ == "__main__":
    main()
