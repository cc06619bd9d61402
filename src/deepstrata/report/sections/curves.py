"""Learning curves and the learning rate over training.

Problem: a final number hides how training got there: under- or overfitting, instability, a
schedule that did not do what was intended.
Idea: plot loss and every metric per epoch for train and validation side by side, the
per-step training loss, the learning rate per step, and the validation metrics against the
wall time since training started (what a budget buys). Axes keep their labels apart: a
constrained layout, at most a few ticks with compact labels (50k steps, minutes or hours of wall
time) and the learning rate in scientific notation.
"""

from __future__ import annotations

import math
from typing import Any

from deepstrata.registry import register_report_section
from deepstrata.report.html import Section, figure_html
from deepstrata.run.run import Run

MAX_TICKS = 5  # per axis; 6-digit step numbers in a 3-inch axis collide beyond that


def thin_ticks(axis: Any, *, integer: bool = False, compact: bool = False) -> None:
    """At most MAX_TICKS ticks on `axis` (matplotlib XAxis/YAxis); `compact` writes 150000 as 150k."""
    from matplotlib.ticker import EngFormatter, MaxNLocator

    # integer axes (epochs, steps) may need a single tick: a one-epoch run has one point
    axis.set_major_locator(MaxNLocator(nbins=MAX_TICKS - 1, integer=integer, min_n_ticks=1 if integer else 2))
    if compact:
        axis.set_major_formatter(EngFormatter(sep=""))


def lr_format(axis: Any) -> None:
    """Learning rates in scientific notation on every tick (3.0e-04; no offset text to collide with)."""
    from matplotlib.ticker import Formatter, MaxNLocator

    class Scientific(Formatter):
        # As many digits as the tick spacing needs: 9.80e-04, 1.00e-03 rather than 1.0e-03 twice.
        def format_ticks(self, values: list[float]) -> list[str]:
            locs = sorted(values)
            step = min((b - a for a, b in zip(locs, locs[1:])), default=0.0)
            top = max((abs(v) for v in locs), default=0.0)
            digits = max(1, math.ceil(math.log10(top / step))) if step > 0 and top > 0 else 1
            return [self.format(v, min(digits, 6)) for v in values]

        @staticmethod
        def format(x: float, digits: int) -> str:
            return "0" if x == 0 else f"{x:.{digits}e}"

        def __call__(self, x: float, pos: int | None = None) -> str:  # one value alone (the cursor readout)
            return self.format(x, 2)

    axis.set_major_locator(MaxNLocator(nbins=MAX_TICKS - 1, min_n_ticks=2))
    axis.set_major_formatter(Scientific())


def time_unit(seconds: float) -> tuple[str, float]:
    """The unit that keeps wall-time ticks short: ("s", 1), ("min", 60) or ("h", 3600)."""
    if seconds > 3 * 3600:
        return "h", 3600.0
    if seconds > 600:
        return "min", 60.0
    return "s", 1.0


@register_report_section("curves")
def curves(run: Run) -> Section | None:
    """Loss and metric curves per epoch, train against validation."""
    epochs = run.scope("epoch")
    if not epochs:
        return None
    import matplotlib.pyplot as plt

    names = sorted({k.split("/", 1)[1] for r in epochs for k in r if k.startswith(("train/", "val/"))})
    fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 3.2), squeeze=False, layout="constrained")
    for ax, name in zip(axes[0], names):
        for split, style in (("train", "-"), ("val", "--")):
            pts = [(r["epoch"], r[f"{split}/{name}"]) for r in epochs if r.get(f"{split}/{name}") is not None]
            if pts:
                ax.plot(*zip(*pts), style, marker="o", ms=3, label=split)
        ax.set_xlabel("epoch")
        thin_ticks(ax.xaxis, integer=True)
        ax.set_title(name)
        ax.grid(alpha=0.3)
        ax.legend()
    return Section("Learning curves", figure_html(fig, alt="loss and metric curves"), order=20)


def learning_rate_figure(steps: list[dict[str, Any]]) -> Any:
    """Training loss (log scale) and learning rate against the optimizer step, side by side."""
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.2), layout="constrained")
    loss = [math.nan if r.get("train/loss") is None else r["train/loss"] for r in steps]  # null: non-finite
    ax1.plot([r["step"] for r in steps], loss, lw=0.8)
    ax1.set_yscale("log")
    ax1.set_title("training loss per step")
    ax2.plot([r["step"] for r in steps], [r["train/lr"] for r in steps])
    ax2.set_title("learning rate")
    lr_format(ax2.yaxis)
    for ax in (ax1, ax2):
        ax.set_xlabel("step")
        thin_ticks(ax.xaxis, integer=True, compact=True)
        ax.grid(alpha=0.3)
    return fig


@register_report_section("learning_rate")
def learning_rate(run: Run) -> Section | None:
    """Per-step training loss and learning rate."""
    steps = [r for r in run.scope("step") if r.get("train/lr") is not None]
    if not steps:
        return None
    fig = learning_rate_figure(steps)
    return Section("Training loss and learning rate per step", figure_html(fig, alt="loss and learning rate per step"), order=25)


def wall_time_figure(epochs: list[dict[str, Any]], names: list[str]) -> Any:
    """One axis per validation metric against the wall time at which each epoch ended."""
    import matplotlib.pyplot as plt

    unit, scale = time_unit(max(r["time/epoch_end_s"] for r in epochs))
    fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 3.2), squeeze=False, layout="constrained")
    for ax, name in zip(axes[0], names):
        pts = [(r["time/epoch_end_s"] / scale, r[f"val/{name}"]) for r in epochs if r.get(f"val/{name}") is not None]
        ax.plot(*zip(*pts), marker="o", ms=3)
        ax.set_xlabel(f"wall time since start ({unit})")
        thin_ticks(ax.xaxis)
        ax.set_title(f"val/{name}")
        ax.grid(alpha=0.3)
    return fig


@register_report_section("wall_time")
def wall_time(run: Run) -> Section | None:
    """Validation metrics against the seconds since fit start at which each epoch ended."""
    epochs = [r for r in run.scope("epoch") if r.get("time/epoch_end_s") is not None]
    names = sorted({k.split("/", 1)[1] for r in epochs for k in r if k.startswith("val/")})
    if not epochs or not names:
        return None
    last = epochs[-1]["time/epoch_end_s"]
    text = f"<p>{len(epochs)} epochs in {last:.0f} s (wall time includes validation).</p>"
    fig = wall_time_figure(epochs, names)
    return Section("Validation metrics against wall time", text + figure_html(fig, alt="validation metrics against wall time"), order=21)
