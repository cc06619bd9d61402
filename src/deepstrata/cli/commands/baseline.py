"""`strata baseline RECIPE`: scikit-learn baselines on exactly the recipe's train/test split."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command()
    def baseline(
        recipe: Path | None = typer.Argument(None, help="Recipe YAML file, e.g. recipes/digits_mlp.yaml (or give --run)."),
        set_: list[str] = typer.Option([], "--set", "-s", help="Override a recipe field (same as strata train)."),
        run: Path = typer.Option(None, "--run", help="A finished run: fit on its own split, write baselines.json there and rebuild its report."),
        models: str = typer.Option("", help="Comma-separated subset, e.g. logistic_regression,random_forest (default: all that apply)."),
        out: Path = typer.Option(None, help="Where to write baselines.json when --run is not given (default runs/baselines/<recipe>/)."),
    ) -> None:
        """Fit logistic/linear regression, random forest, gradient boosting, SVM and k-NN on the recipe's split."""
        from rich.console import Console
        from rich.table import Table

        from deepstrata.baselines.classical import BASELINES_FILE, fit_baselines, write_baselines
        from deepstrata.errors import UserError

        from deepstrata.run.run import Run

        opened = Run.open(run) if run is not None else None
        if opened is not None and recipe is not None:
            from deepstrata.config import load_recipe

            named = load_recipe(recipe, set_).name
            if named != opened.recipe.name:
                raise UserError(f"--run '{run}' is a run of recipe '{opened.recipe.name}', not '{named}'; pass that run's recipe or drop the recipe argument")
        results, split = fit_baselines(None if opened else recipe, set_, run=opened, models=[m for m in models.split(",") if m.strip()] or None)
        table = Table(title=f"classical baselines: {split['recipe']} ({split['dataset']}, test size {split.get('test_size')})")
        table.add_column("model")
        table.add_column(f"test {results[0].metric}", justify="right")
        auroc = any(r.auroc is not None for r in results)  # binary classification
        if auroc:
            table.add_column("test AUROC", justify="right")
        table.add_column("fit time (s)", justify="right")
        for r in results:
            cells = [r.model, f"{r.value:.4f}"] + ([f"{r.auroc:.4f}" if r.auroc is not None else "-"] if auroc else [])
            table.add_row(*cells, f"{r.fit_time_s:.3f}")
        Console().print(table)
        target = (run / BASELINES_FILE) if run is not None else (out or Path("runs/baselines") / split["recipe"]) / BASELINES_FILE
        write_baselines(target, results, split)
        typer.echo(f"wrote {target}")
        if run is not None:
            from deepstrata.report import build_report

            typer.echo(f"report: {build_report(opened)}")
