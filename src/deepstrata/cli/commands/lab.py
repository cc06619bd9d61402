"""`strata lab trainability|optimizers|normalization`: the foundations labs, measured on this machine."""

from __future__ import annotations

from pathlib import Path

import typer


def _ints(text: str) -> tuple[int, ...]:
    from deepstrata.errors import UserError

    try:
        return tuple(int(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise UserError(f"expected comma-separated integers such as 2,8,32, got '{text}'") from None


def _names(text: str, choices: tuple[str, ...], what: str) -> tuple[str, ...]:
    from deepstrata.errors import UserError, did_you_mean

    names = tuple(t.strip() for t in text.split(",") if t.strip())
    for n in names:
        if n not in choices:
            raise UserError(f"unknown {what} '{n}'{did_you_mean(n, list(choices))} (choices: {', '.join(choices)})")
    return names


def _steps_to_target(optimizer: str, row: dict, budget: int) -> str:
    """`adam 41 steps (lr 0.1)`, or, when the budget ran out first, say so instead of `None steps`."""
    if row["steps_to_target"] is None:
        final = "diverged" if row["final_loss"] is None else f"final loss {row['final_loss']:.3g}"
        return f"{optimizer} did not reach the target in {budget} steps (best lr {row['lr']:.2g}, {final})"
    return f"{optimizer} {row['steps_to_target']} steps (lr {row['lr']:.2g})"


def register(app: typer.Typer) -> None:
    lab = typer.Typer(help="Foundations labs: trainability vs depth, optimizer landscapes, normalisation vs batch size.", no_args_is_help=True)
    app.add_typer(lab, name="lab")

    @lab.command()
    def trainability(
        out: Path = typer.Option(Path("runs/labs/trainability"), help="Directory for trainability.json and the PNG figures."),
        depths: str = typer.Option("2,5,10,20,50", help="Comma-separated depths (hidden layers)."),
        activations: str = typer.Option("sigmoid,tanh,relu,gelu", help="Comma-separated activations."),
        inits: str = typer.Option("naive,xavier,he", help="Comma-separated initialisations."),
        variants: str = typer.Option("plain,batch,layer,residual", help="Comma-separated variants."),
        steps: int = typer.Option(300, min=0, help="SGD steps per configuration (the fixed budget)."),
        seed: int = typer.Option(0),
    ) -> None:
        """Sweep depth x activation x init x {plain, BatchNorm, LayerNorm, residual} on digits."""
        from deepstrata.labs.deep_mlp import ACTIVATIONS, INITS, VARIANTS
        from deepstrata.labs.outputs import trainability_lab

        summary = trainability_lab(
            out, depths=_ints(depths), activations=_names(activations, tuple(ACTIVATIONS), "activation"),
            inits=_names(inits, INITS, "init"), variants=_names(variants, VARIANTS, "variant"), steps=steps, seed=seed,
        )
        typer.echo(f"{summary['cells']} configurations measured; wrote {', '.join(str(out / f) for f in summary['files'])}")

    @lab.command()
    def optimizers(
        out: Path = typer.Option(Path("runs/labs/optimizers"), help="Directory for optimizers.json and the PNG figures."),
        names: str = typer.Option("sgd,momentum,nesterov,rmsprop,adagrad,adam,adamw,lamb", "--optimizers", help="Comma-separated lab optimizers."),
        surfaces: str = typer.Option("quadratic,rosenbrock,saddle,saddle_10d", help="Comma-separated surfaces."),
        steps: int = typer.Option(1000, min=1, help="Step budget per run."),
    ) -> None:
        """Registered optimizers on an ill-conditioned quadratic, Rosenbrock and saddles, each at its best LR."""
        from deepstrata.labs.landscapes import LAB_OPTIMIZERS, SURFACES
        from deepstrata.labs.outputs import optimizers_lab

        summary = optimizers_lab(out, optimizers=_names(names, tuple(LAB_OPTIMIZERS), "optimizer"), surfaces=_names(surfaces, tuple(SURFACES), "surface"), steps=steps)
        for surface, rows in summary.items():
            typer.echo(f"{surface}: " + ", ".join(_steps_to_target(o, r, steps) for o, r in rows.items()))
        typer.echo(f"wrote {out}")

    @lab.command()
    def normalization(
        out: Path = typer.Option(Path("runs/labs/normalization"), help="Directory for normalization.json and the PNG figure."),
        norms: str = typer.Option("batch,layer,group,none", help="Comma-separated normalisations of small_cnn."),
        batch_sizes: str = typer.Option("2,8,32,128", help="Comma-separated batch sizes."),
        steps: int = typer.Option(600, min=1, help="Optimizer steps per cell (equal for every batch size)."),
        seed: int = typer.Option(0),
    ) -> None:
        """BatchNorm / LayerNorm / GroupNorm / none on the same CNN at several batch sizes, on digits."""
        from deepstrata.labs.normalization import NORMS
        from deepstrata.labs.outputs import normalization_lab

        cells = normalization_lab(out, norms=_names(norms, NORMS, "norm"), batch_sizes=_ints(batch_sizes), steps=steps, seed=seed)
        for c in cells:
            typer.echo(f"{c['norm']:6s} batch {c['batch_size']:4d}: test accuracy {c['test_accuracy']:.4f}")
        typer.echo(f"wrote {out}")
