"""Figures of the labs: heatmaps, per-layer gradient norms, trajectories, batch-size curves.

Problem: a sweep of hundreds of numbers is unreadable as a table. Idea: one matplotlib figure per
lab question, saved as PNG next to the lab's JSON so docs and reports can embed it.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def trainability_heatmap(cells: list[dict], path: Path) -> Path:
    """Test accuracy: rows (activation, init), columns (variant, depth)."""
    plt = _plt()
    import numpy as np

    rows = sorted({(c["activation"], c["init"]) for c in cells})
    cols = sorted({(c["variant"], c["depth"]) for c in cells}, key=lambda vc: (["plain", "batch", "layer", "residual"].index(vc[0]), vc[1]))
    grid = np.full((len(rows), len(cols)), np.nan)
    for c in cells:
        grid[rows.index((c["activation"], c["init"])), cols.index((c["variant"], c["depth"]))] = c["test_accuracy"]
    fig, ax = plt.subplots(figsize=(0.45 * len(cols) + 3, 0.35 * len(rows) + 1.5))
    im = ax.imshow(grid, vmin=0, vmax=1, cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(cols)), [f"{v}/{d}" for v, d in cols], rotation=90, fontsize=7)
    ax.set_yticks(range(len(rows)), [f"{a}+{i}" for a, i in rows], fontsize=7)
    ax.set_title("test accuracy after a fixed budget (variant/depth)")
    fig.colorbar(im, ax=ax)
    return _save(fig, path)


def gradient_norm_curves(cells: list[dict], path: Path) -> Path:
    """Per-layer gradient norm at initialisation (log scale), one line per configuration."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4))
    for c in cells:
        g = c["grad_norms_init"][:-1]
        ax.semilogy(range(1, len(g) + 1), [max(v, 1e-30) for v in g], marker=".", label=f"{c['activation']}+{c['init']} {c['variant']}")
    ax.set_xlabel("layer (1 = first)")
    ax.set_ylabel("||dL/dW|| at init")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _save(fig, path)


def landscape_figure(surface: str, objective: Any, trajectories: dict[str, Any], path: Path) -> Path:
    """Contours with each optimizer's path (first two coordinates) and the loss curves."""
    plt = _plt()
    import numpy as np
    import torch

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    pts = np.array([p[:2] for t in trajectories.values() for p in t.points])
    lo, hi = np.nanmin(pts, 0), np.nanmax(pts, 0)
    pad = 0.2 * (hi - lo + 1e-3)
    lo, hi = np.maximum(lo - pad, -5), np.minimum(hi + pad, 5)
    xs, ys = np.meshgrid(np.linspace(lo[0], hi[0], 120), np.linspace(lo[1], hi[1], 120))
    dim = len(next(iter(trajectories.values())).points[0])

    def f2(x: float, y: float) -> float:
        p = torch.zeros(dim, dtype=torch.float64)
        p[0], p[1] = x, y
        return float(objective(p))

    zs = np.vectorize(f2)(xs, ys)
    ax1.contour(xs, ys, zs, levels=30, cmap="Greys", linewidths=0.6)
    for name, t in trajectories.items():
        p = np.array([q[:2] for q in t.points])
        ax1.plot(p[:, 0], p[:, 1], lw=1, label=f"{name} (lr {t.lr:.2g})")
        ax2.plot(t.losses, lw=1, label=name)
    ax1.set_xlim(lo[0], hi[0])
    ax1.set_ylim(lo[1], hi[1])
    ax1.set_title(f"{surface}: paths (first two coordinates)")
    ax1.legend(fontsize=7)
    low = min(min(t.losses) for t in trajectories.values())
    ax2.set_yscale("symlog" if low < 0 else "log")
    ax2.set_xlabel("step")
    ax2.set_title("loss")
    ax2.grid(alpha=0.3)
    return _save(fig, path)


def normalization_figure(cells: list[dict], path: Path) -> Path:
    """Test accuracy and loss roughness against batch size, one line per normalisation."""
    plt = _plt()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.8))
    for norm in sorted({c["norm"] for c in cells}):
        cs = sorted((c for c in cells if c["norm"] == norm), key=lambda c: c["batch_size"])
        bs = [c["batch_size"] for c in cs]
        ax1.plot(bs, [c["test_accuracy"] for c in cs], marker="o", label=norm)
        ax2.plot(bs, [c["loss_roughness"] for c in cs], marker="o", label=norm)
    for ax, title in ((ax1, "test accuracy"), (ax2, "training-loss roughness (std of step changes)")):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("batch size")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend()
    return _save(fig, path)


def loss_overlay(curves: dict[str, list[float]], path: Path, *, title: str) -> Path:
    """Several loss curves on one axis (e.g. scratch vs PyTorch)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for (name, ys), style in zip(curves.items(), ("-", "--", ":", "-.")):
        ax.plot(range(1, len(ys) + 1), ys, style, marker="o", ms=3, label=name)
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("training loss")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, path)


def variance_bars(table: dict[str, dict[str, float]], path: Path) -> Path:
    """Estimator variance per objective (log scale)."""
    plt = _plt()
    fig, axes = plt.subplots(1, len(table), figsize=(4.5 * len(table), 3.4), squeeze=False)
    for ax, (objective, row) in zip(axes[0], table.items()):
        ax.bar(list(row), [max(v, 1e-12) for v in row.values()])
        ax.set_yscale("log")
        ax.set_title(objective)
        ax.set_ylabel("variance of one estimate")
        ax.tick_params(axis="x", rotation=20)
    return _save(fig, path)


def _save(fig: Any, path: Path) -> Path:
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path


def finite(x: float) -> float | None:
    """JSON-safe float (NaN/inf -> None)."""
    return x if math.isfinite(x) else None
