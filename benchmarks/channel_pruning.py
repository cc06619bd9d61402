"""Structured channel pruning on MNIST: half the channels of LeNet-5 and the ResNet removed, accuracy and CPU latency.

Problem: does removing 50% of the channels (whole filters, the following layers rewired) keep
accuracy within 1 point after a short fine-tune, and does the smaller dense model run at least
1.5x faster on a CPU at batch 64?
Idea: train `recipes/mnist_lenet.yaml` and `recipes/mnist_resnet.yaml` (seed 0), then run
`strata prune-channels RUN --fraction 0.5` (every channel group halved; the ResNet's residual
groups with it, scope all). Settings fixed before any run: fine-tuning epochs (LeNet-5 4, ResNet
2), network slimming's penalty 1e-4 for 1 epoch before the cut. Chosen on validation: the
fine-tuning learning rate, 0.1x, 0.3x or 1x the recipe's, for the L1 criterion; slimming reuses
the chosen one. Test accuracy is scored once, for the record. Latency: the unpruned and pruned
models' forward pass on a (64, 1, 28, 28) batch, interleaved in this one process on 1 thread,
medians over many rounds (the machine is shared with other jobs, so rounds are many and short).

    .venv/bin/python benchmarks/run_all.py --only channel_pruning
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit  # noqa: E402
from _recipe_run import REPO, STRATA, run_recipe  # noqa: E402

os.environ.setdefault("DEEPSTRATA_DATA", str(REPO.parent / "shared" / "data"))
MODELS = {"LeNet-5": "recipes/mnist_lenet.yaml", "ResNet": "recipes/mnist_resnet.yaml"}
EPOCHS = {"LeNet-5": 4, "ResNet": 2}
LR_SCALES = (0.1, 0.3, 1.0)
FRACTION = 0.5
THREADS = 1
ROUNDS, PASSES = 100, 3  # latency: 100 interleaved rounds, each the mean of 3 forward passes
JOBS = ThreadPoolExecutor(max_workers=2)  # prune-channels processes, 2 at a time, shared by both models


def prune_channels(run_dir: Path, *args: str) -> dict:
    cmd = [STRATA, "prune-channels", str(run_dir), "--fraction", str(FRACTION), *args, "--json"]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-3000:])
        raise SystemExit(f"{' '.join(cmd)} failed")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def study(name: str) -> dict:
    metrics, run_dir, wall, _, _ = run_recipe(MODELS[name], f"trainer.num_threads={THREADS}")
    print(f"{name}: trained, test {metrics['test/accuracy']:.4f} in {wall:.0f} s", file=sys.stderr, flush=True)
    epochs = ["--finetune-epochs", str(EPOCHS[name])]
    jobs = {s: JOBS.submit(prune_channels, run_dir, "--criterion", "l1", *epochs, "--finetune-lr-scale", str(s)) for s in LR_SCALES}
    l1 = {s: job.result() for s, job in jobs.items()}
    for s, r in l1.items():
        print(name, "l1", s, "val", r["metrics"]["val/accuracy"], file=sys.stderr, flush=True)
    best = max(LR_SCALES, key=lambda s: l1[s]["metrics"]["val/accuracy"])  # chosen on validation
    slim = prune_channels(run_dir, "--criterion", "slimming", "--slimming-epochs", "1", *epochs, "--finetune-lr-scale", str(best))
    return {"parent": str(run_dir), "base": metrics["test/accuracy"], "lr_scale": best, "l1": l1[best], "slimming": slim,
            "val_by_lr_scale": {str(s): l1[s]["metrics"]["val/accuracy"] for s in LR_SCALES}}


def latencies(runs: dict[str, str]) -> dict[str, float]:
    """Median seconds of one forward pass at batch 64 for each run's model, timed interleaved."""
    import torch

    from deepstrata.run.run import Run

    torch.set_num_threads(THREADS)
    models = {k: Run.open(v).model().eval() for k, v in runs.items()}
    x = torch.randn(64, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    times: dict[str, list[float]] = {k: [] for k in models}
    with torch.inference_mode():
        for m in models.values():  # warm-up
            for _ in range(3):
                m(x)
        for _ in range(ROUNDS):
            for k, m in models.items():
                t0 = time.perf_counter()
                for _ in range(PASSES):
                    m(x)
                times[k].append((time.perf_counter() - t0) / PASSES)
    return {k: statistics.median(v) for k, v in times.items()}


def size(run_dir: str) -> int:
    return (Path(run_dir) / "model.safetensors").stat().st_size


def main() -> None:
    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = dict(zip(MODELS, pool.map(study, MODELS)))
    rows = [
        f"| model | criterion | channels removed | parameters | size on disk | test accuracy | lost (points) | latency at batch 64 ({THREADS} thread) | speed-up |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    figures = []
    for name, r in results.items():
        lat = latencies({"unpruned": r["parent"], "l1": r["l1"]["run_dir"], "slimming": r["slimming"]["run_dir"]})
        m0 = r["l1"]["metrics"]
        rows.append(f"| {name} | unpruned | 0 | {int(m0['prune/parameters_before']):,} | {size(r['parent']) / 1024:.0f} KiB | {r['base']:.4f} | | {1e3 * lat['unpruned']:.2f} ms | 1.00x |")
        for crit in ("l1", "slimming"):
            m, d = r[crit]["metrics"], r[crit]["run_dir"]
            lost = 100 * (r["base"] - m["test/accuracy"])
            speed = lat["unpruned"] / lat[crit]
            rows.append(
                f"| {name} | {crit} | {m['prune/channels_removed']:.0%} | {int(m['prune/parameters']):,} | {size(d) / 1024:.0f} KiB | "
                f"{m['test/accuracy']:.4f} (cut {m['test/accuracy_pruned']:.4f}) | {lost:+.2f} | {1e3 * lat[crit]:.2f} ms | {speed:.2f}x |"
            )
            r[crit]["latency_s"], r[crit]["speedup"], r[crit]["lost_points"] = lat[crit], speed, lost
        r["latency_unpruned_s"] = lat["unpruned"]
        for crit in ("l1", "slimming"):
            figures.append({"name": f"{name} ({crit}): test accuracy lost with 50% of channels removed, after fine-tuning", "value": round(r[crit]["lost_points"], 2),
                            "unit": "points", "note": f"goal <= 1; unpruned {r['base']:.4f}, fine-tuned {r[crit]['metrics']['test/accuracy']:.4f}"})
            figures.append({"name": f"{name} ({crit}): CPU speed-up at batch 64, {THREADS} thread", "value": round(r[crit]["speedup"], 2), "unit": "x",
                            "note": f"goal >= 1.5; medians of {ROUNDS} interleaved rounds, shared machine"})
    wall = time.perf_counter() - t0
    emit("channel_pruning", ".venv/bin/python benchmarks/run_all.py --only channel_pruning", figures, table="\n".join(rows),
         description=(f"strata prune-channels --fraction 0.5 on the MNIST LeNet-5 and ResNet runs (seed 0): every channel group halved (ResNet residual "
                      f"groups included), fine-tuned {EPOCHS['LeNet-5']} (LeNet-5) / {EPOCHS['ResNet']} (ResNet) epochs at the learning-rate scale chosen on "
                      f"validation from {list(LR_SCALES)}; slimming: 1 epoch with L1 1e-4 on the BN scales first. Test accuracy on the 10,000 MNIST test "
                      f"images; latency interleaved in one process, {THREADS} thread, shared 2-core machine; {wall:.0f} s in all."),
         data={k: {kk: vv for kk, vv in v.items()} for k, v in results.items()})


if __name__ == "__main__":
    main()
