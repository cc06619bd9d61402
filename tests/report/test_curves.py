"""The wall-time section plots validation metrics against the seconds at which epochs ended."""

from __future__ import annotations

from pathlib import Path
from deepstrata.report.sections.curves import wall_time

from deepstrata.run.run import Run


def test_wall_time_section_plots_validation_metrics_against_elapsed_seconds(tmp_path: Path) -> None:
    records = [
        {"scope": "epoch", "epoch": 1, "time/epoch_end_s": 10.0, "train/loss": 1.0, "val/loss": 0.9, "val/accuracy": 0.7},
        {"scope": "epoch", "epoch": 2, "time/epoch_end_s": 21.5, "train/loss": 0.5, "val/loss": 0.6, "val/accuracy": 0.8},
    ]
    section = wall_time(Run(tmp_path, records=records))
    assert section is not None and section.title == "Validation metrics against wall time"
    assert "2 epochs in 22 s" in section.html and "<img" in section.html


def test_wall_time_section_is_skipped_without_timing_or_validation(tmp_path: Path) -> None:
    assert wall_time(Run(tmp_path, records=[{"scope": "epoch", "epoch": 1, "val/loss": 0.5}])) is None
    assert wall_time(Run(tmp_path, records=[{"scope": "epoch", "epoch": 1, "time/epoch_end_s": 3.0, "train/loss": 0.5}])) is None


def _overlapping_labels(fig) -> list[tuple[str, str]]:
    """Pairs of x tick labels (within one axis) or x axis labels (across axes) whose drawn boxes overlap."""
    import itertools

    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    pairs, xlabels = [], []
    for i, ax in enumerate(fig.axes):
        lo, hi = sorted(ax.get_xlim())
        ticks = [
            (f"axes {i} tick {label.get_text()}", label.get_window_extent(renderer))
            for loc, label in zip(ax.get_xticks(), ax.get_xticklabels())
            if lo <= loc <= hi and label.get_visible() and label.get_text()  # ticks outside the view are not drawn
        ]
        pairs += [(a, b) for (a, box_a), (b, box_b) in itertools.combinations(ticks, 2) if box_a.overlaps(box_b)]
        if ax.get_xlabel():
            xlabels.append((f"axes {i} label", ax.xaxis.label.get_window_extent(renderer)))
    pairs += [(a, b) for (a, box_a), (b, box_b) in itertools.combinations(xlabels, 2) if box_a.overlaps(box_b)]
    return pairs


def test_wall_time_and_learning_rate_axes_do_not_overlap() -> None:
    import math

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from deepstrata.report.sections.curves import learning_rate_figure, wall_time_figure

    # a long run: 300k optimizer steps (6-digit tick labels), 39 epochs of an hour each
    steps = [{"scope": "step", "step": s, "train/loss": 2 * math.exp(-s / 5e4) + 0.1, "train/lr": 1e-3} for s in range(1, 300_001, 500)]
    epochs = [
        {"scope": "epoch", "epoch": e, "time/epoch_end_s": 3600.5 * e, "val/loss": 1 / e, "val/accuracy": 1 - 0.5 / e}
        for e in range(1, 40)
    ]
    for fig in (learning_rate_figure(steps), wall_time_figure(epochs, ["accuracy", "loss"])):
        assert _overlapping_labels(fig) == []
        plt.close(fig)
    lr = learning_rate_figure(steps).axes[1]
    lr.figure.canvas.draw()
    assert all("e-" in t.get_text() for t in lr.get_yticklabels() if t.get_text())  # 1.0e-03, not 0.00100 with an offset
    plt.close(lr.figure)
