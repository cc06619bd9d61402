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
