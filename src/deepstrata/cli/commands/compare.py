"""`strata compare RUN RUN ...`: the runs side by side in one HTML page.

Problem: deciding between two runs means reading two reports and diffing two recipes by eye.
Idea: one page with overlaid curves, a side-by-side test-metrics table and only the config keys
that differ (`deepstrata.report.compare`); the command prints its path.
"""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("compare")
    def compare(
        run_dirs: list[Path] = typer.Argument(..., metavar="RUN_DIRS...", help="Two or more run directories (strata runs lists them)."),
        out: Path = typer.Option(Path("compare.html"), "--out", "-o", help="Where to write the page (default: ./compare.html)."),
    ) -> None:
        """Overlay the runs' curves, tabulate their test metrics and diff their configs in one HTML page."""
        from deepstrata.report.compare import build_comparison

        typer.echo(str(build_comparison(run_dirs, out)))
