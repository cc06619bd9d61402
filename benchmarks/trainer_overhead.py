"""What does the Trainer cost? The same MLP, data and steps: a hand-written loop, deepstrata, Lightning.

Problem: a training framework that adds hooks, logging, checkpoints and guards to every step can
quietly make every experiment slower than the ten-line loop it replaces.
Idea: train the same MLP (784-512-256-10, SGD, batch 128) on the same MNIST tensors (one epoch,
469 steps; the first 60,000 images, or sklearn digits upscaled if MNIST is absent) three ways,
interleaved and in rotating order within each repetition: (1) a hand-written PyTorch loop,
(2) `deepstrata.training.Trainer` with the callbacks every run gets (metrics.jsonl every step, the
non-finite guard, last.pt at the epoch end, progress lines), (3) PyTorch Lightning's Trainer with
its defaults minus the logger (checkpointing, progress bar and model summary stay). Report the
median over repetitions of each framework's wall time divided by the raw loop's in the same
repetition. Three more deepstrata rows say where its extra time goes: the loop with no
callbacks, the default callbacks without the non-finite guard (`trainer.nonfinite: off`), and
the defaults logging every 50 steps (`trainer.log_every_n_steps: 50`). One torch thread; the
load average is recorded because the machine is shared.
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
BATCH = 128


def load_data():
    import torch

    from deepstrata.registry import registry

    os.environ.setdefault("DEEPSTRATA_DATA", str(REPO.parent / "shared" / "data"))
    if (Path(os.environ["DEEPSTRATA_DATA"]) / "mnist").is_dir():
        data = registry("dataset").get("mnist")()
        x, y = data.x[:60000].flatten(1).float(), data.y[:60000]
        return x, y, "MNIST (60,000 images)"
    data = registry("dataset").get("digits")()
    x = torch.nn.functional.interpolate(data.x, size=(28, 28)).flatten(1)
    reps = -(-60000 // len(x))
    return x.repeat(reps, 1)[:60000], data.y.repeat(reps)[:60000], "sklearn digits upscaled to 28x28, tiled to 60,000"


def make_model():
    import torch
    from torch import nn

    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 256), nn.ReLU(), nn.Linear(256, 10))


def make_loader(x, y):
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    return DataLoader(TensorDataset(x, y), batch_size=BATCH, shuffle=True, generator=torch.Generator().manual_seed(0))


def run_raw(x, y, workdir: Path) -> float:
    import torch

    model, loader = make_model(), make_loader(x, y)
    start = time.perf_counter()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    model.train()
    for xb, yb in loader:
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(model(xb), yb)
        loss.backward()
        opt.step()
    return time.perf_counter() - start


DEFAULT_CALLBACKS = ("metrics_logger", "checkpoint", "nonfinite_guard", "progress")


def run_deepstrata(x, y, workdir: Path, *, callbacks: tuple[str, ...] = DEFAULT_CALLBACKS, log_every: int = 1) -> float:
    import torch

    from deepstrata.losses.cross_entropy import cross_entropy
    from deepstrata.registry import registry
    from deepstrata.tasks.classification import ClassificationTask
    from deepstrata.training.trainer import Trainer

    model, loader = make_model(), make_loader(x, y)
    run_dir = Path(tempfile.mkdtemp(dir=workdir))
    get = registry("callback").get
    start = time.perf_counter()
    build = {
        "metrics_logger": lambda: get("metrics_logger")(run_dir=str(run_dir)),
        "checkpoint": lambda: get("checkpoint")(run_dir=str(run_dir), monitor="train/loss"),
        "nonfinite_guard": lambda: get("nonfinite_guard")(),
        "progress": lambda: get("progress")(mode="lines"),
    }
    task = ClassificationTask(model, cross_entropy(), {})
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    trainer = Trainer(max_epochs=1, callbacks=[build[name]() for name in callbacks], device="cpu", log_every_n_steps=log_every)
    trainer.fit(task, loader, optimizer=opt)
    return time.perf_counter() - start


def run_lightning(x, y, workdir: Path) -> float:
    import pytorch_lightning as pl
    import torch

    class Module(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.model = make_model()

        def training_step(self, batch, batch_idx):
            xb, yb = batch
            return torch.nn.functional.cross_entropy(self.model(xb), yb)

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.05, momentum=0.9)

    loader = make_loader(x, y)
    module = Module()
    start = time.perf_counter()
    trainer = pl.Trainer(max_epochs=1, logger=False, accelerator="cpu", devices=1, default_root_dir=str(workdir))
    trainer.fit(module, loader)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    x, y, data_name = load_data()
    runners = {
        "raw": run_raw,
        "deepstrata": run_deepstrata,
        "lightning": run_lightning,
        "deepstrata, no callbacks": functools.partial(run_deepstrata, callbacks=()),
        "deepstrata, no non-finite guard": functools.partial(run_deepstrata, callbacks=tuple(c for c in DEFAULT_CALLBACKS if c != "nonfinite_guard")),
        "deepstrata, log every 50 steps": functools.partial(run_deepstrata, log_every=50),
    }
    times: dict[str, list[float]] = {k: [] for k in runners}
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        for name, fn in runners.items():  # warm-up: imports, allocator, first-call costs
            fn(x[: BATCH * 20], y[: BATCH * 20], workdir)
        names = list(runners)
        for rep in range(args.repeats):
            order = names[rep % len(names) :] + names[: rep % len(names)]  # rotate who goes first
            for name in order:
                times[name].append(runners[name](x, y, workdir))
            print(f"rep {rep + 1}: " + ", ".join(f"{n} {times[n][-1]:.2f}s" for n in names), file=sys.stderr, flush=True)
    others = [n for n in names if n != "raw"]
    ratios = {n: [t / r for t, r in zip(times[n], times["raw"])] for n in others}
    med = {n: statistics.median(v) for n, v in ratios.items()}
    load = f"load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after (1-minute, {os.cpu_count()} cores)"
    figures = [
        {"name": "deepstrata / raw loop", "value": round(med["deepstrata"], 3), "unit": "x wall time", "note": f"median of {args.repeats}; goal <= 1.03"},
        {"name": "lightning / raw loop", "value": round(med["lightning"], 3), "unit": "x wall time", "note": f"median of {args.repeats}"},
        {"name": "raw loop, one epoch", "value": round(statistics.median(times["raw"]), 2), "unit": "s", "note": "469 steps, median"},
    ]
    steps = -(-len(x) // BATCH)
    for n in others[2:]:
        extra = (med[n] - 1) * statistics.median(times["raw"]) / steps * 1e3  # from the median ratio
        figures.append({"name": f"{n} / raw loop", "value": round(med[n], 3), "unit": "x wall time", "note": f"median of {args.repeats}; {extra:+.3f} ms per step"})
    table = "| way | median wall time (s) | median ratio to raw | all ratios |\n|---|---|---|---|\n"
    table += f"| raw PyTorch loop | {statistics.median(times['raw']):.2f} | 1.000 | - |\n"
    for n in others:
        table += f"| {n} | {statistics.median(times[n]):.2f} | {med[n]:.3f} | {', '.join(f'{r:.3f}' for r in ratios[n])} |\n"
    table += f"\nData: {data_name}; measured under {load}."
    emit(
        "trainer_overhead",
        ".venv/bin/python benchmarks/run_all.py --only trainer_overhead",
        figures,
        table=table,
        description="Same MLP 784-512-256-10, SGD momentum, batch 128, one epoch (469 steps), 1 torch thread; "
        "deepstrata Trainer with its default callbacks vs Lightning defaults minus the logger vs a hand-written loop, interleaved.",
    )


if __name__ == "__main__":
    main()
