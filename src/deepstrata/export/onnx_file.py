"""ONNX files: written from the traced program, read back into ONNX Runtime, metadata inside.

Problem: an ONNX file must run outside Python with the same outputs as the eager model, carry
what its user needs (preprocessing, class names, input spec) and, when its weights pass the
2 GiB protobuf limit, keep them in external-data files that a hostile file could point
anywhere on disk.
Idea: `write_onnx` converts the ExportedProgram with the torch.export-based exporter
(`torch.onnx.export(..., dynamo=True)`; the older TorchScript exporter only when asked,
`exporter="legacy"`), stores the metadata as the model's `metadata_props`, keeps weights inline
unless they are large (or `external_data="external"`), and checks the written file: the ONNX
checker, and every external-data location inside the output folder. `OnnxModel` reads one back
with the same location check before ONNX Runtime opens it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import numpy as np

from deepstrata.errors import UserError
from deepstrata.export.program import Program, quiet
from deepstrata.run.safe_paths import inside
from deepstrata.export.signature import BATCH, Signature

ExternalData = Literal["auto", "inline", "external"]
Exporter = Literal["dynamo", "legacy"]
INLINE_LIMIT = 1 << 30  # weights above 1 GiB go to an external-data file (protobuf stops at 2 GiB)
LEGACY_OPSET = 17
META_PREFIX = "deepstrata."


def weight_bytes(program: Program) -> int:
    return sum(t.numel() * t.element_size() for t in program.exported.state_dict.values()) + sum(
        t.numel() * t.element_size() for t in program.exported.constants.values() if hasattr(t, "numel")
    )


def write_onnx(
    program: Program,
    path: Path,
    *,
    metadata: dict[str, str],
    external_data: ExternalData = "auto",
    exporter: Exporter = "dynamo",
    opset: int | None = None,
) -> list[Path]:
    """Write `program` to `path` (a `.onnx` file); returns every file written (graph first)."""
    import onnx

    path = Path(path)
    external = external_data == "external" or (external_data == "auto" and weight_bytes(program) > INLINE_LIMIT)
    data_name = f"{path.name}.data"
    sig = program.signature
    names_in, names_out = [t.name for t in sig.inputs], [t.name for t in sig.outputs]
    props = {f"{META_PREFIX}{k}": v for k, v in metadata.items()}
    with quiet():
        if exporter == "dynamo":
            import torch

            onnx_program = torch.onnx.export(program.exported, (), dynamo=True, input_names=names_in, output_names=names_out, opset_version=opset, optimize=True, verbose=False)
            onnx_program.model.producer_name = "deepstrata"
            onnx_program.model.metadata_props.update(props)
            onnx_program.save(str(path), external_data=external)
        else:
            import torch

            example = tuple(torch.zeros([2, *t.shape[1:]], dtype=getattr(torch, t.dtype)) for t in sig.inputs)
            torch.onnx.export(
                program.traced,
                example,
                str(path),
                dynamo=False,
                input_names=names_in,
                output_names=names_out,
                dynamic_axes={n: {0: BATCH} for n in [*names_in, *names_out]},
                opset_version=opset or LEGACY_OPSET,
            )
            proto = onnx.load(str(path))
            proto.producer_name = "deepstrata"
            for key, value in props.items():
                entry = proto.metadata_props.add()
                entry.key, entry.value = key, value
            if external:
                onnx.save_model(proto, str(path), save_as_external_data=True, all_tensors_to_one_file=True, location=data_name)
            else:
                onnx.save_model(proto, str(path))
    locations = external_locations(path)
    onnx.checker.check_model(str(path))
    return [path, *[inside(path.parent, loc, what="external-data file") for loc in locations]]


def _graph(path: Path) -> Any:
    """The ONNX file's protobuf without its external weights (graph, metadata, tensor locations)."""
    import onnx

    return onnx.load(str(path), load_external_data=False)


def external_locations(path: Path, proto: Any = None) -> list[str]:
    """The external-data files an ONNX file names, each checked to lie in the file's folder."""
    from onnx.external_data_helper import ExternalDataInfo, _get_all_tensors, uses_external_data

    proto = _graph(path) if proto is None else proto
    found: list[str] = []
    for tensor in _get_all_tensors(proto):
        if uses_external_data(tensor):
            location = ExternalDataInfo(tensor).location
            inside(path.parent, location, what=f"external-data file of tensor '{tensor.name}'")
            if location not in found:
                found.append(location)
    return found


def read_metadata(path: Path, proto: Any = None) -> dict[str, Any]:
    """The deepstrata entries of an ONNX file's metadata, JSON values decoded."""
    proto = _graph(path) if proto is None else proto
    out: dict[str, Any] = {}
    for entry in proto.metadata_props:
        if entry.key.startswith(META_PREFIX):
            out[entry.key.removeprefix(META_PREFIX)] = _decode(entry.value)
    return out


def _decode(value: str) -> Any:
    try:
        return json.loads(value)
    except ValueError:
        return value


class OnnxModel:
    """An exported ONNX file opened in ONNX Runtime (CPU), after its external-data check."""

    def __init__(self, path: str | Path, *, threads: int = 0):
        import onnxruntime as ort

        self.path = Path(path)
        if not self.path.is_file():
            raise UserError(f"'{self.path}' does not exist; export a run first: strata export RUN --format onnx")
        proto = _graph(self.path)  # read once: the location check, then the metadata
        external_locations(self.path, proto)
        self.metadata = read_metadata(self.path, proto)
        del proto
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.log_severity_level = 3
        self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        sig = self.metadata.get("signature")
        self.signature = Signature.from_dict(sig) if isinstance(sig, dict) else None
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]

    def run(self, *inputs: np.ndarray) -> list[np.ndarray]:
        if len(inputs) != len(self.input_names):
            raise UserError(f"{self.path.name} takes {len(self.input_names)} inputs ({', '.join(self.input_names)}), got {len(inputs)}")
        return list(self.session.run(None, {n: np.ascontiguousarray(a) for n, a in zip(self.input_names, inputs)}))
