"""`strata lr-find RECIPE`: the learning-rate range test on a recipe's model and data.

The plot goes to `<output_dir>/lr_find/<recipe>/<timestamp>.png`: not inside `<output_dir>/<recipe>/`,
where every folder is a run, so a sweep is never listed or opened as one, and sweeps do not
overwrite each other.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("lr-find")
    def lr_find(
        recipe: Path = typer.Argument(..., help="Recipe YAML file, e.g. recipes/digits_cnn.yaml."),
        set_: list[str] = typer.Option([], "--set", "-s", help="Override a recipe field (repeatable)."),
        min_lr: float = typer.Option(1e-7, help="First learning rate of the sweep."),
        max_lr: float = typer.Option(10.0, help="Last learning rate of the sweep."),
        steps: int = typer.Option(100, help="Number of steps (one batch each)."),
        out: Path = typer.Option(None, help="Where to write the plot; by default a new <timestamp>.png in <output_dir>/lr_find/<recipe>/."),
        as_json: bool = typer.Option(False, "--json", help="End with one JSON line: suggestion, curve, plot path."),
    ) -> None:
        """Sweep the LR exponentially for a few batches, plot loss against LR, and suggest a value.

        The plot goes to <output_dir>/lr_find/<recipe>/<timestamp>.png (or --out), apart from the runs in <output_dir>/<recipe>/.
        """
        from deepstrata.training.environment import torch_threads
        from deepstrata.config import load_recipe
        from deepstrata.experiment import build_experiment
        from deepstrata.training.lr_finder import lr_range_test, plot
        from deepstrata.training.trainer import resolve_device

        spec = load_recipe(recipe, set_)
        with torch_threads(spec.trainer.num_threads):
            exp = build_experiment(spec)
            result = lr_range_test(
                exp.task,
                exp.loader("train"),
                exp.build_optimizer(),
                min_lr=min_lr,
                max_lr=max_lr,
                num_steps=steps,
                device=resolve_device(spec.trainer.device),
            )
        path = out or default_plot_path(spec.output_dir, spec.name)
        path.parent.mkdir(parents=True, exist_ok=True)
        plot(result, path)
        stop = "stopped when the loss diverged" if result.stopped_early else "ran to max_lr"
        typer.echo(f"suggested lr: {result.suggestion:.3g} (steepest descent; lowest loss at {result.min_loss_lr:.3g}; {stop})")
        typer.echo(f"plot: {path}")
        if as_json:
            typer.echo(json.dumps({**result.to_dict(), "plot": str(path)}))


def default_plot_path(output_dir: str | Path, recipe_name: str) -> Path:
    """`<output_dir>/lr_find/<recipe>/<YYYYmmdd-HHMMSS>.png`, away from `<output_dir>/<recipe>/`'s runs."""
    return Path(output_dir) / "lr_find" / recipe_name / f"{time.strftime('%Y%m%d-%H%M%S')}.png"
