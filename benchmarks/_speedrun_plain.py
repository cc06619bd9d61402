"""The speedrun recipes' networks and training, written as one plain PyTorch script.

Problem: a speedrun's time says little about the toolkit unless it sits beside what the same
work costs without it: imports, data, the same network, optimiser, schedule and epochs.
Idea: read the recipe (for its numbers only), load the data with numpy and scikit-learn,
split it the same way (stratified, from the seed), build the network from torch layers,
train with a bare loop (AdamW, OneCycleLR, label-smoothed cross-entropy, one validation
pass per epoch) and score the test split. Prints one JSON line: the test accuracy, the
parameter count (the benchmark checks it equals the toolkit's model) and the seconds from
this process's start to the test accuracy, read with the function behind run.json's
`timing.process_to_test_s` (imported only at the end, so the script trains without the toolkit).

    python benchmarks/_speedrun_plain.py recipes/digits_speedrun.yaml --seed 0
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import time
from pathlib import Path

import numpy as np
import torch
import yaml
from torch import nn


def idx(path: Path) -> np.ndarray:
    raw = gzip.decompress(path.read_bytes())
    dims = raw[3]
    shape = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def load(data: dict, seed: int):
    """(train, val, test) as (x float32 N,1,H,W in [0, 1], y int64), split as deepstrata splits."""
    from sklearn.model_selection import train_test_split

    if data["name"] == "digits":
        from sklearn.datasets import load_digits

        d = load_digits()
        x, y = (d.images / 16.0).astype(np.float32)[:, None], d.target.astype(np.int64)
        # deepstrata's order: the test part first (random_state seed), then validation (seed + 1)
        rest, test = train_test_split(np.arange(len(y)), test_size=data["test_fraction"], random_state=seed, stratify=y)
        share = data["val_fraction"] / (1 - data["test_fraction"])
        train, val = train_test_split(np.sort(rest), test_size=share, random_state=seed + 1, stratify=y[np.sort(rest)])
        parts = [(x[np.sort(i)], y[np.sort(i)]) for i in (train, val, test)]
    else:
        root = Path(os.environ["DEEPSTRATA_DATA"]) / data["name"]
        x = idx(root / "train-images-idx3-ubyte.gz").astype(np.float32)[:, None] / 255.0
        y = idx(root / "train-labels-idx1-ubyte.gz").astype(np.int64)
        tx = idx(root / "t10k-images-idx3-ubyte.gz").astype(np.float32)[:, None] / 255.0
        ty = idx(root / "t10k-labels-idx1-ubyte.gz").astype(np.int64)
        train, val = train_test_split(np.arange(len(y)), test_size=data["val_fraction"], random_state=seed, stratify=y)
        parts = [(x[np.sort(train)], y[np.sort(train)]), (x[np.sort(val)], y[np.sort(val)]), (tx, ty)]
    return [(torch.from_numpy(np.ascontiguousarray(a)), torch.from_numpy(b)) for a, b in parts]


def network(model: dict, in_channels: int, image_size: int) -> nn.Module:
    """small_cnn or lenet5 (norm: batch) as plain torch layers."""
    if model["name"] == "small_cnn":
        layers: list[nn.Module] = []
        c = in_channels
        widths = model["widths"]
        for i, w in enumerate(widths):
            for _ in range(2):
                layers += [nn.Conv2d(c, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU()]
                c = w
            if i < len(widths) - 1:
                layers.append(nn.MaxPool2d(2))
        return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(model.get("dropout", 0.25)), nn.Linear(c, 10))
    if model["name"] == "lenet5":
        c1, c2 = model.get("channels", [6, 16])
        side = (image_size // 2 - 4) // 2
        return nn.Sequential(
            nn.Conv2d(in_channels, c1, 5, padding=2, bias=False), nn.BatchNorm2d(c1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, 5, bias=False), nn.BatchNorm2d(c2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(c2 * side * side, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10),
        )
    raise SystemExit(f"_speedrun_plain.py has no plain version of model '{model['name']}'")


@torch.no_grad()
def accuracy(net: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int) -> float:
    net.eval()
    right = sum(int((net(x[i : i + batch]).argmax(1) == y[i : i + batch]).sum()) for i in range(0, len(x), batch))
    net.train()
    return right / len(x)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("recipe")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    recipe = yaml.safe_load(Path(args.recipe).read_text())
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    data, opt, trainer = recipe["data"], recipe["optimizer"], recipe["trainer"]
    (x, y), (vx, vy), (tx, ty) = load(data, args.seed)
    net = network(recipe["model"], x.shape[1], x.shape[2])
    optimizer = torch.optim.AdamW(net.parameters(), lr=opt["lr"], weight_decay=opt.get("weight_decay", 0.01))
    batch, epochs = data["batch_size"], trainer["max_epochs"]
    steps = epochs * -(-len(x) // batch)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=opt["lr"], total_steps=steps, cycle_momentum=False)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=recipe.get("loss", {}).get("label_smoothing", 0.0))
    generator = torch.Generator().manual_seed(args.seed)
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=generator)
        for i in range(0, len(x), batch):
            rows = order[i : i + batch]
            loss = loss_fn(net(x[rows]), y[rows])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
        accuracy(net, vx, vy, data.get("eval_batch_size", 256))  # one validation pass per epoch, as the recipe's run does
    test = accuracy(net, tx, ty, data.get("eval_batch_size", 256))
    from deepstrata.training.startup import process_start  # the clock run.json's timing uses (19 ms to import after torch)

    seconds = time.time() - process_start()[0]
    print(json.dumps({"test_accuracy": test, "parameters": sum(p.numel() for p in net.parameters()), "process_to_test_s": round(seconds, 3)}))


if __name__ == "__main__":
    main()
