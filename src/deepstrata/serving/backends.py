"""What computes a served model's outputs: eager torch, or ONNX Runtime on the run's export.

Problem: the protocol layer and the batcher should not care whether a forward pass runs in
PyTorch or ONNX Runtime, yet each backend opens a run differently and one forward pass must
never run concurrently with another on the same model (threads would fight over the cores).
Idea: a backend is a name, a `Signature` (the inputs and outputs the protocol checks against)
and `infer(arrays) -> arrays`, called by the batcher from a single worker thread. Both start
from the run: torch loads `run.model()`; onnxruntime opens the newest `strata export` ONNX file
of the run, exporting it first when there is none. Backends register by name, as every
component does.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from deepstrata.errors import UserError
from deepstrata.export.signature import Signature
from deepstrata.registry import REGISTRIES, register_serving_backend
from deepstrata.run.run import Run

BACKENDS = REGISTRIES["serving_backend"]


class Backend(Protocol):
    platform: str
    signature: Signature

    def infer(self, inputs: list[np.ndarray]) -> list[np.ndarray]: ...


def _real_inputs(run: Run) -> tuple[Any, ...]:
    """One real batch of the run's model inputs (test split, else validation)."""
    task = run.task()
    for split in ("test", "val"):
        try:
            batch = next(iter(run.loader(split)), None)
        except UserError:
            continue
        if batch is not None:
            return tuple(task.model_inputs(batch))
    raise UserError(f"'{run.path}' has neither a test nor a validation batch to read its model's input shapes from")


@register_serving_backend("torch")
class TorchBackend:
    """The run's model in eval mode, no gradients, outputs flattened as the export does."""

    platform = "pytorch_torch"

    def __init__(self, run: Run):
        import torch

        from deepstrata.export.program import tile
        from deepstrata.export.signature import describe, tensor_inputs

        self.model = run.model().eval()
        inputs = tensor_inputs(_real_inputs(run))
        self.signature = describe(self.model, tile(inputs, 2))
        self._torch = torch

    def infer(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        from deepstrata.export.signature import flat_outputs

        torch = self._torch
        with torch.inference_mode():
            out = flat_outputs(self.model(*(torch.from_numpy(a) for a in inputs)))
        return [o.numpy() for o in out]


@register_serving_backend("onnxruntime")
class OnnxRuntimeBackend:
    """ONNX Runtime (CPU) on the run's newest ONNX export; `strata export` runs first if there is none."""

    platform = "onnxruntime_onnx"

    def __init__(self, run: Run, *, threads: int | None = None):
        import torch

        from deepstrata.export.onnx_file import OnnxModel
        from deepstrata.tools.base import apply_tool
        from deepstrata.tools.export import latest_export

        path = latest_export(run, "onnx")
        if path is None:
            apply_tool("export", run, format="onnx")
            path = latest_export(run, "onnx")
        self.path = path
        # The same thread count as the torch backend: the run's environment decides it.
        self.session = OnnxModel(path, threads=torch.get_num_threads() if threads is None else threads)
        if self.session.signature is None:
            raise UserError(f"{path} carries no deepstrata signature; export the run again with strata export RUN --format onnx")
        self.signature = self.session.signature

    def infer(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        return self.session.run(*inputs)


def open_backend(name: str, run: Run) -> Backend:
    if name not in BACKENDS:
        raise UserError(f"unknown backend '{name}'; choose one of: {', '.join(sorted(BACKENDS.names()))}")
    return BACKENDS.get(name)(run)
