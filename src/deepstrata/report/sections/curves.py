"""Learning curves and the learning rate over training.

Problem: a final number hides how training got there: under- or overfitting, instability, a
schedule that did not do what was intended.
Idea: plot loss and every metric per epoch for train and validation side by side, the
per-step training loss, the learning rate per step, and the validation metrics against the
wall time since training started (what a budget buys).
"""

from __future__ import annotations

from deepstrata.registry import register_report_section
from deepstrata.report.html import Section, figure_html
from deepstrata.run.run import Run


@register_report_section("curves")
def curves(run: Run) -> Section | None:
    """Loss and metric curves per epoch, train against validation."""
    epochs = run.scope("epoch")
    if not epochs:
        return None
    import matplotlib.pyplot as plt

    names = sorted({k.split("/", 1)[1] for r in epochs for k in r if k.startswith(("train/", "val/"))})
    fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 3.2), squeeze=False)
    for ax, name in zip(axes[0], names):
        for split, style in (("train", "-"), ("val", "--")):
            pts = [(r["epoch"], r[f"{split}/{name}"]) for r in epochs if r.get(f"{split}/{name}") is not None]
            if pts:
                ax.plot(*zip(*pts), style, marker="o", ms=3, label=split)
        ax.set_xlabel("epoch")
        ax.set_title(name)
        ax.grid(alpha=0.3)
        ax.legend()
    return Section("Learning curves", figure_html(fig, alt="loss and metric curves"), order=20)


@register_report_section("learning_rate")
def learning_rate(run: Run) -> Section | None:
    """Per-step training loss and learning rate."""
    steps = [r for r in run.scope("step") if r.get("train/lr") is not None]
    if not steps:
        return None
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.2))
    ax1.plot([r["step"] for r in steps], [r["train/loss"] for r in steps], lw=0.8)
    ax1.set_yscale("log")
    ax1.set_title("training loss per step")
    ax2.plot([r["step"] for r in steps], [r["train/lr"] for r in steps])
    ax2.set_title("learning rate")
    for ax in (ax1, ax2):
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    return Section("Training loss and learning rate per step", figure_html(fig, alt="loss and learning rate per step"), order=25)


@register_report_section("wall_time")
def wall_time(run: Run) -> Section | None:
    """Validation metrics against the seconds since fit start at which each epoch ended."""
    epochs = [r for r in run.scope("epoch") if r.get("time/epoch_end_s") is not None]
    names = sorted({k.split("/", 1)[1] for r in epochs for k in r if k.startswith("val/")})
    if not epochs or not names:
        return None
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 3.2), squeeze=False)
    for ax, name in zip(axes[0], names):
        pts = [(r["time/epoch_end_s"], r[f"val/{name}"]) for r in epochs if r.get(f"val/{name}") is not None]
        ax.plot(*zip(*pts), marker="o", ms=3)
        ax.set_xlabel("seconds since training started (validation included)")
        ax.set_title(f"val/{name}")
        ax.grid(alpha=0.3)
    last = epochs[-1]["time/epoch_end_s"]
    text = f"<p>{len(epochs)} epochs in {last:.0f} s.</p>"
    return Section("Validation metrics against wall time", text + figure_html(fig, alt="validation metrics against wall time"), order=21)
