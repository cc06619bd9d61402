"""What an exported model takes and gives: named tensors with a symbolic batch dimension.

Problem: `torch.export` and ONNX need a fixed number of positional tensor inputs and tensor
outputs, while the toolkit's models take varargs (`Calibrated`, `Ensemble`) and return a tensor,
a tuple or a dict; and a served model must say, in its file, which names, dtypes and shapes it
accepts, with the batch size left open.
Idea: wrap the model in `Traced`, whose `forward` takes exactly the inputs a real batch gave
(`Task.model_inputs`) and returns a flat tuple of tensors; name the inputs after the model's own
`forward` parameters and the outputs `output` (or `output_0`, ... / the dict's keys); mark
dimension 0 of every input as the shared symbolic `batch`. `Signature` is that description as
plain JSON, stored in the exported file.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from deepstrata.errors import UserError

MAX_INPUTS = 3
BATCH = "batch"


@dataclass(frozen=True)
class TensorSpec:
    """One named tensor: `dtype` as torch names it ("float32"), `shape` with -1 for the batch."""

    name: str
    dtype: str
    shape: list[int]


@dataclass(frozen=True)
class Signature:
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]

    def to_dict(self) -> dict[str, Any]:
        return {"inputs": [asdict(t) for t in self.inputs], "outputs": [asdict(t) for t in self.outputs]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Signature:
        return cls([TensorSpec(**t) for t in data["inputs"]], [TensorSpec(**t) for t in data["outputs"]])


class Traced(nn.Module):
    """`model` with one positional tensor per input and a flat tuple of tensors out."""

    def __init__(self, model: nn.Module, arity: int):
        super().__init__()
        if not 1 <= arity <= MAX_INPUTS:
            raise UserError(f"export takes models of 1 to {MAX_INPUTS} tensor inputs; this one takes {arity}: wrap it in a module whose forward takes at most {MAX_INPUTS} tensors and export that")
        self.model, self.arity = model, arity

    def forward(self, input_0: torch.Tensor, input_1: torch.Tensor | None = None, input_2: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
        args = (input_0, input_1, input_2)[: self.arity]
        return flat_outputs(self.model(*args))


def flat_outputs(out: Any) -> tuple[torch.Tensor, ...]:
    """A model's output as a tuple of tensors (a dict in key order); anything else is refused."""
    if isinstance(out, torch.Tensor):
        return (out,)
    values = list(out.values()) if isinstance(out, dict) else list(out) if isinstance(out, (tuple, list)) else None
    if values is None or not values or not all(isinstance(v, torch.Tensor) for v in values):
        raise UserError(f"export needs a model whose forward returns tensors (one, a tuple or a dict of them), got {type(out).__name__}")
    return tuple(values)


def output_names(out: Any) -> list[str]:
    if isinstance(out, torch.Tensor):
        return ["output"]
    if isinstance(out, dict):
        return [str(k) for k in out]
    return [f"output_{i}" for i in range(len(out))]


def input_names(model: nn.Module, arity: int) -> list[str]:
    """The model's own forward parameter names (`x`, `idx`, `src`) when it has them, else `input_<i>`."""
    params = [p for p in inspect.signature(model.forward).parameters.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if len(params) >= arity:
        return [p.name for p in params[:arity]]
    return ["input"] if arity == 1 else [f"input_{i}" for i in range(arity)]


def tensor_inputs(inputs: Sequence[Any]) -> tuple[torch.Tensor, ...]:
    """A task's model inputs, checked to be tensors with a batch dimension."""
    if not inputs or not all(isinstance(a, torch.Tensor) and a.dim() >= 1 for a in inputs):
        kinds = ", ".join(type(a).__name__ for a in inputs) or "none"
        raise UserError(f"export needs tensor inputs with a batch dimension; this run's model takes: {kinds}")
    return tuple(inputs)


def describe(model: nn.Module, inputs: Sequence[torch.Tensor]) -> Signature:
    """The signature of `model` on `inputs`: dimension 0 of every tensor is the batch (-1)."""
    with torch.no_grad():
        out = model(*inputs)
    outs = flat_outputs(out)
    names_in = input_names(model, len(inputs))
    return Signature(
        inputs=[TensorSpec(n, str(t.dtype).removeprefix("torch."), [-1, *t.shape[1:]]) for n, t in zip(names_in, inputs)],
        outputs=[TensorSpec(n, str(t.dtype).removeprefix("torch."), [-1, *t.shape[1:]] if t.dim() else []) for n, t in zip(output_names(out), outs)],
    )


def dynamic_batch(inputs: Sequence[torch.Tensor]) -> dict[str, dict[int, Any]]:
    """torch.export's dynamic_shapes for `Traced`: dimension 0 of every input is one shared `batch`."""
    batch = torch.export.Dim(BATCH, min=1)
    return {f"input_{i}": {0: batch} for i in range(len(inputs))}
