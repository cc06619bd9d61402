"""One traced program per export: `torch.export` on a real batch, with the batch size symbolic.

Problem: ONNX and `.pt2` files of one model must compute the same function, and a model that
cannot be traced (a loop whose length depends on the data, packed sequences) must say why in
one line rather than with torch.export's page of graph dump.
Idea: `trace` wraps the model (`signature.Traced`), traces it once on the batch tiled to two rows
(a size-1 example would let torch.export specialise the batch to 1) and returns the
ExportedProgram with its `Signature`; both writers start from it. A model registered with
`not_exportable="reason"` is refused before tracing, with that reason; any other failure is
reported as its first line, with the model named.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from deepstrata.errors import UserError
from deepstrata.export.signature import Signature, Traced, describe, dynamic_batch, tensor_inputs

TRACE_ROWS = 2


@dataclass
class Program:
    exported: torch.export.ExportedProgram
    signature: Signature
    traced: Traced


def not_exportable_reason(spec: dict[str, Any]) -> str | None:
    """The reason a registered architecture (or the base it wraps) declared for not exporting."""
    from deepstrata.registry import MODELS

    name = spec.get("architecture")
    reason = MODELS.meta(name).get("not_exportable") if isinstance(name, str) and name in MODELS else None
    if reason:
        return f"'{name}' cannot be exported: {reason}"
    base = (spec.get("kwargs") or {}).get("base")
    if isinstance(base, dict):
        return not_exportable_reason(base)
    for member in (spec.get("kwargs") or {}).get("members") or []:
        if isinstance(member, dict) and (why := not_exportable_reason(member)):
            return why
    return None


def tile(inputs: Sequence[torch.Tensor], rows: int) -> tuple[torch.Tensor, ...]:
    """The inputs' rows 0, 1, ... repeated to exactly `rows` rows (paired inputs stay paired)."""
    index = torch.arange(rows) % inputs[0].shape[0]
    return tuple(t[index] for t in inputs)


def trace(model: nn.Module, inputs: Sequence[Any], *, spec: dict[str, Any] | None = None) -> Program:
    """torch.export `model` (in eval mode) on `inputs`; dimension 0 of every input is symbolic."""
    if spec is not None and (why := not_exportable_reason(spec)):
        raise UserError(why)
    inputs = tensor_inputs(inputs)
    model = model.eval()
    traced = Traced(model, len(inputs)).eval()
    example = tile(inputs, TRACE_ROWS)
    signature = describe(model, example)
    try:
        with quiet():
            exported = torch.export.export(traced, example, dynamic_shapes=dynamic_batch(example))
    except Exception as err:  # torch.export raises many types; the user needs one line and the model's name
        first = next((line.strip() for line in str(err).splitlines() if line.strip()), type(err).__name__)
        name = (spec or {}).get("architecture", type(model).__name__)
        raise UserError(
            f"torch.export could not trace '{name}' with a free batch size: {first[:300]}; "
            "a model that branches on its data must be rewritten without that branch to export"
        ) from None
    return Program(exported, signature, traced)


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """torch.export and the ONNX exporter print progress and graph dumps; keep them for errors only."""
    loggers = [logging.getLogger(n) for n in ("torch.export", "torch._export", "torch.onnx", "torch._dynamo", "torch.fx.experimental.symbolic_shapes", "onnxscript")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            # deprecation notices inside torch's own pytree and exporter code, and the legacy
            # exporter's TracerWarnings on shape checks that export as constants by design
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            # an RNN's cached _flat_weights are re-read from its parameters when traced: not the user's concern
            warnings.filterwarnings("ignore", message=".*were assigned during export.*", category=UserWarning)
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)
