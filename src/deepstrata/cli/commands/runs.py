"""`strata runs [DIR]`: every run below a folder, one row each, oldest first.

Problem: `ls runs/*/` shows timestamps, not which runs finished, which were killed or derived,
and how well each did. Idea: summarise each run directory (`deepstrata.run.listing`) as a row of
recipe, start time, status, key test metric and parent, as a table or as JSON lines.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("runs")
    def runs(
        root: Path = typer.Argument(Path("runs"), metavar="DIR", help="The folder to search for run directories (default: runs/)."),
        as_json: bool = typer.Option(False, "--json", help="Print one JSON object per run instead of a table."),
    ) -> None:
        """List the runs below DIR: recipe, start time, status, key test metric, parent."""
        from deepstrata.run.listing import list_runs

        summaries = list_runs(root)
        if as_json:
            for s in summaries:
                typer.echo(json.dumps(s.to_dict()))
            return
        from rich.console import Console
        from rich.table import Table

        table = Table(title=f"runs below {root}" if summaries else f"no runs below {root} (a run directory holds config.yaml)")
        columns = ["run", "recipe", "started", "status", "key test metrics"] + (["parent"] if any(s.parent for s in summaries) else [])
        for column in columns:
            table.add_column(column, overflow="fold", no_wrap=column == "key test metrics")
        for s in summaries:
            where = Path(s.run_dir)
            where = where.relative_to(root) if where.is_relative_to(root) and where != root else where
            metrics = ", ".join(f"{k.removeprefix('test/')}={v:.4g}" for k, v in s.metrics.items())
            colour = "green" if s.status == "finished" else "red" if s.status.startswith("damaged") else "yellow"
            row = [str(where), s.recipe, s.started, f"[{colour}]{s.status}[/{colour}]", metrics, s.parent or ""]
            table.add_row(*row[: len(columns)])
        Console().print(table)
