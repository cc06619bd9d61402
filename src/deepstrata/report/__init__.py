"""The run report: one self-contained HTML page per run."""

from deepstrata.report.html import RunRecord, Section, build_report

__all__ = ["RunRecord", "Section", "build_report"]
