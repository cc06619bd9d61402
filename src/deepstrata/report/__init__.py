"""The run report: one self-contained HTML page per run."""

from deepstrata.report.html import Section, build_report

__all__ = ["Section", "build_report"]
