"""`strata list [KIND]`: registered components, without importing torch."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    @app.command("list")
    def list_(kind: str = typer.Argument(None, help="models, datasets, optimizers, ... (omit to list the kinds).")) -> None:
        """List registered components of a kind with a one-line description each."""
        from deepstrata.catalog import kinds, list_components

        if kind is None:
            for k in kinds():
                typer.echo(f"{k:16s} {len(list_components(k))} registered")
            return
        items = list_components(kind)
        width = max((len(n) for n in items), default=0)
        for name, summary in items.items():
            typer.echo(f"{name:{width}s}  {summary}")
