"""`strata train`, `strata evaluate`, `strata predict`, `strata report`: the run lifecycle."""

from __future__ import annotations

import json
from pathlib import Path

import typer


def _print_metrics(title: str, metrics: dict[str, float]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in sorted(metrics.items()):
        table.add_row(key, f"{value:.4f}")
    Console().print(table)


def _prediction_line(row: dict) -> str:
    """`digit.npy[2]: label=3, class_name=3, probability=0.9912, top 3: 3 (0.9912), 8 (0.0050), 5 (0.0021)`,
    then one indented `warning: ...` line per warning the Predictor gave the input."""
    where = row["input"] + (f"[{row['row']}]" if "row" in row else "")
    parts = []
    for key, value in row.items():
        if key in ("input", "row", "top_k", "warnings"):
            continue
        parts.append(f"{key}={round(value, 4) if isinstance(value, float) else value}")
    if "top_k" in row:
        parts.append(f"top {len(row['top_k'])}: " + ", ".join(f"{t['class_name']} ({t['probability']:.4f})" for t in row["top_k"]))
    return f"{where}: " + ", ".join(parts) + "".join(f"\n  warning: {w}" for w in row.get("warnings", []))


def register(app: typer.Typer) -> None:
    @app.command()
    def train(
        recipe: Path | None = typer.Argument(None, help="Recipe YAML file, e.g. recipes/digits_cnn.yaml."),
        set_: list[str] = typer.Option([], "--set", "-s", help="Override a recipe field: --set trainer.max_epochs=5 (repeatable)."),
        as_json: bool = typer.Option(False, "--json", help='End with one JSON line: {"run_dir": ..., "metrics": {...}}.'),
        resume: Path | None = typer.Option(None, "--resume", help="Continue the run in RUN_DIR from its checkpoints/last.pt (mid-epoch)."),
    ) -> None:
        """Train a recipe, test it on the held-out split, and write a run directory with its report."""
        from deepstrata import api
        from deepstrata.errors import UserError

        if (recipe is None) == (resume is None):
            raise UserError("give a recipe file to start a run, or --resume RUN_DIR to continue one (not both)")
        result = api.train(recipe, set_, resume=resume)
        _print_metrics("test metrics", result.metrics)
        typer.echo(f"run: {result.run_dir}")
        typer.echo(f"report: {result.run_dir / 'report.html'}")
        if as_json:
            typer.echo(result.to_json())

    @app.command()
    def distill(
        teacher: Path = typer.Argument(..., help="A finished classification or language-model run: the teacher."),
        recipe: Path = typer.Argument(..., help="The student's recipe, on the same data (e.g. recipes/mnist_student_mlp.yaml)."),
        temperature: float = typer.Option(4.0, "--temperature", "-T", help="Softmax temperature of the soft targets."),
        alpha: float = typer.Option(0.9, "--alpha", help="Weight of the soft-target term; 1 - alpha weighs the loss on the labels."),
        hint_weight: float | None = typer.Option(None, "--hint-weight", help="FitNets: add this weight times the L2 hint loss (classifiers; off by default)."),
        hint_layer: int | None = typer.Option(None, "--hint-layer", help="FitNets: the teacher's feature stage (default: its middle one)."),
        guided_layer: int | None = typer.Option(None, "--guided-layer", help="FitNets: the student's feature stage (default: the one of the hint's size nearest its middle)."),
        set_: list[str] = typer.Option([], "--set", "-s", help="Override a recipe field: --set trainer.max_epochs=5 (repeatable)."),
        as_json: bool = typer.Option(False, "--json", help='End with one JSON line: {"run_dir": ..., "metrics": {...}}.'),
    ) -> None:
        """Train the student recipe against a teacher run's soft targets (Hinton et al. 2015), with FitNets hints by --hint-weight; same as task: {name: distillation or lm_distillation, ...}."""
        import json

        from deepstrata import api
        from deepstrata.compression.distillation import distillation_task_for

        hints = {"hint_weight": hint_weight, "hint_layer": hint_layer, "guided_layer": guided_layer}
        spec = {"name": distillation_task_for(teacher), "teacher": str(teacher), "temperature": temperature, "alpha": alpha}
        task = json.dumps({**spec, **{k: v for k, v in hints.items() if v is not None}})
        result = api.train(recipe, [f"task={task}", *set_])
        _print_metrics("test metrics", result.metrics)
        typer.echo(f"run: {result.run_dir}")
        typer.echo(f"report: {result.run_dir / 'report.html'}")
        if as_json:
            typer.echo(result.to_json())

    @app.command()
    def evaluate(
        run_dir: Path = typer.Argument(..., help="A finished run directory (runs/<recipe>/<timestamp>)."),
        split: str = typer.Option("test", help="Which split to evaluate: train, val or test."),
        as_json: bool = typer.Option(False, "--json", help="End with one JSON line holding run_dir and metrics."),
    ) -> None:
        """Rebuild a run's model from model.json + model.safetensors and recompute a split's metrics."""
        from deepstrata import api

        from deepstrata.training.test_weights import describe

        result = api.evaluate(run_dir, split=split)
        _print_metrics(f"{split} metrics", result.metrics)
        tested = describe(api.open_run(run_dir).tested_weights)
        if tested:
            typer.echo(f"weights: {tested}")
        typer.echo(f"run: {run_dir}")
        if as_json:
            typer.echo(result.to_json())

    @app.command()
    def predict(
        run_dir: Path = typer.Argument(..., help="A finished run directory."),
        inputs: list[str] = typer.Argument(..., help=".npy arrays or image files; for a seq2seq run, the input texts themselves."),
        top_k: int = typer.Option(1, "--top-k", min=1, help="Classification: also list the K most likely classes."),
        as_json: bool = typer.Option(False, "--json", help="Print one JSON object per line instead of a table."),
    ) -> None:
        """Predict with a finished run's model; inputs are raw, as the dataset stores them."""
        from deepstrata import api

        results = api.load(run_dir).predict_files(inputs, top_k=top_k)
        for r in results:
            if as_json:
                typer.echo(json.dumps(r))
            else:
                typer.echo(_prediction_line(r))

    @app.command()
    def report(run_dir: Path = typer.Argument(..., help="A run directory.")) -> None:
        """(Re)build a run's report.html from the files in its directory."""
        from deepstrata.report import build_report
        from deepstrata.run.run import Run

        typer.echo(str(build_report(Run.open(run_dir))))
