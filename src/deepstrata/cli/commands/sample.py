"""`strata sample`: draw new examples from a trained generative model."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command()
    def sample(
        run_dir: Path = typer.Argument(..., help="A finished run of a generative recipe (vae, gan, ddpm, realnvp, pixelcnn)."),
        n: int = typer.Option(64, "--n", help="How many samples."),
        class_: int | None = typer.Option(None, "--class", help="Class-conditional models: the class to draw (default: 0, 1, ..., K-1 in turn)."),
        steps: int | None = typer.Option(None, "--steps", help="Diffusion models: fewer steps than T use DDIM (e.g. 50); default: all T steps (DDPM)."),
        guidance: float | None = typer.Option(None, "--guidance", help="Conditional diffusion: classifier-free guidance weight w (e.g. 2.0)."),
        seed: int = typer.Option(0, "--seed", help="Seed of the noise, for reproducible samples."),
        out: Path | None = typer.Option(None, "--out", help="Output path without suffix (default: RUN_DIR/samples/sample_n<N>[_class<C>])."),
    ) -> None:
        """Sample a trained generative model; writes a PNG grid (or scatter plot) and a .npy array."""
        import numpy as np

        from deepstrata.errors import UserError
        from deepstrata.report.sections.generative import save_samples_png
        from deepstrata.run.run import Run

        run = Run.open(run_dir)
        task = run.task_class.for_inference(run.model(), run.spec)
        if not hasattr(task, "sample"):
            raise UserError(f"run '{run.path}' holds a {run.architecture} model, which cannot sample; use a generative run (vae, gan, ddpm, ...)")
        samples = task.sample(n, label=class_, steps=steps, guidance=guidance, seed=seed)
        arr = samples.cpu().float().numpy()
        if out is None:
            out = run.path / "samples" / (f"sample_n{n}" + (f"_class{class_}" if class_ is not None else ""))
        out.parent.mkdir(parents=True, exist_ok=True)
        np.save(out.with_suffix(".npy"), arr, allow_pickle=False)
        num_classes = int(getattr(task.model, "num_classes", 0))
        cols = num_classes if class_ is None and num_classes and n >= num_classes else None
        title = f"{run.architecture}: {n} samples" + (f", class {class_}" if class_ is not None else "")
        save_samples_png(arr, out.with_suffix(".png"), cols=cols, title=title)
        typer.echo(f"wrote {out.with_suffix('.png')} and {out.with_suffix('.npy')} {tuple(arr.shape)}")
