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
        import torch

        from deepstrata.api import _check_run_dir
        from deepstrata.errors import UserError
        from deepstrata.report.sections.generative import save_samples_png
        from deepstrata.run.artifact import load_model
        from deepstrata.training.callbacks.samples import class_labels

        run_dir = _check_run_dir(run_dir)
        if n < 1:
            raise UserError(f"--n must be at least 1, got {n}")
        model, spec = load_model(run_dir)
        if not hasattr(model, "sample"):
            raise UserError(f"run '{run_dir}' holds a {spec.get('architecture')} model, which cannot sample; use a generative run (vae, gan, ddpm, ...)")
        num_classes = getattr(model, "num_classes", 0)
        if class_ is not None and not num_classes:
            raise UserError(f"--class needs a class-conditional model; {spec.get('architecture')} is unconditional (use cvae, cgan or conditional_ddpm)")
        if guidance is not None and not (num_classes and spec.get("architecture", "").endswith("ddpm")):
            raise UserError("--guidance applies to class-conditional diffusion models (conditional_ddpm) only")
        if steps is not None and not spec.get("architecture", "").endswith("ddpm"):
            raise UserError("--steps applies to diffusion models (ddpm, conditional_ddpm) only")
        if class_ is not None and not 0 <= class_ < num_classes:
            raise UserError(f"--class {class_} is outside 0..{num_classes - 1}")
        y = torch.full((n,), class_, dtype=torch.long) if class_ is not None else class_labels(n, num_classes)
        try:
            with torch.no_grad():
                samples = model.sample(n, y=y, steps=steps, guidance=guidance, generator=torch.Generator().manual_seed(seed))
        except ValueError as err:
            raise UserError(str(err)) from None
        arr = samples.cpu().float().numpy()
        if out is None:
            out = run_dir / "samples" / (f"sample_n{n}" + (f"_class{class_}" if class_ is not None else ""))
        out.parent.mkdir(parents=True, exist_ok=True)
        np.save(out.with_suffix(".npy"), arr, allow_pickle=False)
        cols = num_classes if class_ is None and num_classes and n >= num_classes else None
        save_samples_png(arr, out.with_suffix(".png"), cols=cols, title=f"{spec.get('architecture')}: {n} samples" + (f", class {class_}" if class_ is not None else ""))
        typer.echo(f"wrote {out.with_suffix('.png')} and {out.with_suffix('.npy')} {tuple(arr.shape)}")
