"""Models that per-sample gradients can be taken of: BatchNorm replaced, in place, by Opacus' fixers.

Problem: DP-SGD clips each example's gradient, so no layer may mix examples of a batch.
BatchNorm does (its statistics are batch means), and so does anything holding running
statistics; Opacus refuses such models. Its `ModuleValidator.fix` replaces them (BatchNorm ->
GroupNorm), but on a copy of the model, while a recipe's task, optimizer and checkpoints all
hold the original.
Idea: run Opacus' own fixers (`ModuleValidator.FIXERS`) on the model's submodules and swap the
replacements in where they sit. The saved run records that it was done (`model.json`'s
`"replaced_modules": "opacus"`), and loading the run applies the same fixers to the freshly
built model before the weights go in, so a DP-trained run opens, evaluates and serves like
any other.
"""

from __future__ import annotations

from torch import nn

from deepstrata.errors import UserError

# The value model.json records when the fixers changed the architecture (run/artifact.py reads it).
OPACUS_FIXERS = "opacus"


def fix_in_place(model: nn.Module) -> list[str]:
    """Replace every submodule Opacus has a fixer for; returns "name: Old -> New" per replacement."""
    from opacus.validators import ModuleValidator

    replaced = []
    for name, module in list(model.named_modules()):
        fixer = ModuleValidator.FIXERS.get(type(module))
        if fixer is None or not name:
            continue
        new = fixer(module)
        reference = next(module.parameters(), None)
        if reference is not None:
            new.to(reference.device)
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        parent._modules[child] = new
        replaced.append(f"{name}: {type(module).__name__} -> {type(new).__name__}")
    return replaced


def check_compatible(model: nn.Module) -> None:
    """A UserError naming what Opacus still cannot take per-sample gradients of."""
    from opacus.validators import ModuleValidator

    was_training = model.training
    model.train()
    try:
        errors = ModuleValidator.validate(model, strict=False)
    finally:
        model.train(was_training)
    if errors:
        shown = "; ".join(str(e).splitlines()[0] for e in errors[:3])
        more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
        raise UserError(
            f"trainer.strategy=dp_sgd cannot take per-sample gradients of this model: {shown}{more}; "
            "choose a model without such layers (for example model.norm=group)"
        )
