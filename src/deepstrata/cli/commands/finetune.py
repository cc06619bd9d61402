"""`strata finetune RUN_DIR NEW_RECIPE --strategy NAME`: transfer a finished run to a new task."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command()
    def finetune(
        run_dir: Path = typer.Argument(..., help="A finished run whose weights to start from (runs/<recipe>/<timestamp>)."),
        recipe: Path = typer.Argument(..., help="The new task's recipe (its data, training length, optimizer)."),
        strategy: str = typer.Option("fine_tuning", "--strategy", help="A fine-tuning strategy: feature_extraction, fine_tuning, gradual_unfreezing, ... (`strata list finetune_strategies`)."),
        head_lr: float = typer.Option(1e-3, "--head-lr", help="Learning rate of the new head."),
        body_lr: float = typer.Option(1e-4, "--body-lr", help="Learning rate of the pretrained body (fine_tuning, gradual_unfreezing)."),
        set_: list[str] = typer.Option([], "--set", "-s", help="Override a field of the new recipe (repeatable)."),
        as_json: bool = typer.Option(False, "--json", help='End with one JSON line: {"run_dir": ..., "metrics": {...}}.'),
    ) -> None:
        """Train NEW_RECIPE from RUN_DIR's weights with a new head, under a fine-tuning strategy."""
        from deepstrata.cli.commands.run import _print_metrics  # the same table `strata train` prints
        from deepstrata.transfer.finetune import finetune as run_finetune

        result = run_finetune(run_dir, recipe, set_, strategy=strategy, head_lr=head_lr, body_lr=body_lr)
        _print_metrics("test metrics", result.metrics)
        typer.echo(f"run: {result.run_dir}")
        typer.echo(f"report: {result.run_dir / 'report.html'}")
        if as_json:
            typer.echo(result.to_json())
