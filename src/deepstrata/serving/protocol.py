"""The Open Inference Protocol's tensors: JSON and the binary tensor extension, decoded and encoded.

Problem: an inference request names its tensors, their datatypes ("FP32", "INT64"), shapes and
data, as JSON lists or, with the binary extension Triton's clients use, as raw bytes after a
JSON header whose length an `Inference-Header-Content-Length` header gives. A server that trusts
any of those numbers (a shape of 10^12 rows, a `binary_data_size` that lies about the body, NaN)
allocates without bound or answers with a 500.
Idea: decode into numpy against the model's declared inputs and check everything before
allocating: every input present once, datatype equal to the model's, shape equal apart from the
batch, element count equal to the shape's (JSON) or byte count equal to the shape's times the
item size and inside the body (binary), finite floats. Any failure is a `ProtocolError` with a
message the client can act on (HTTP 400). Outputs are encoded as JSON, or as binary when the
request asks (`binary_data_output`, or an output's `binary_data`).
(https://kserve.github.io/website/latest/modelserving/data_plane/v2_protocol/ and Triton's
binary_tensor_data extension.)
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from deepstrata.export.signature import Signature, TensorSpec

# The protocol's datatype names and the numpy types they hold (BYTES is not a model input here).
DATATYPES: dict[str, np.dtype] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
}
TORCH_TO_DATATYPE = {"bool": "BOOL", "uint8": "UINT8", "int8": "INT8", "int16": "INT16", "int32": "INT32", "int64": "INT64", "float16": "FP16", "float32": "FP32", "float64": "FP64"}
HEADER_LENGTH = "inference-header-content-length"
MAX_NAME = 256


class ProtocolError(ValueError):
    """A request the server cannot read; `status` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def datatype(spec: TensorSpec) -> str:
    return TORCH_TO_DATATYPE.get(spec.dtype, spec.dtype.upper())


def tensor_metadata(specs: list[TensorSpec]) -> list[dict[str, Any]]:
    return [{"name": t.name, "datatype": datatype(t), "shape": list(t.shape)} for t in specs]


@dataclass
class InferRequest:
    """A decoded request: its id, the input arrays in the model's order, what outputs it wants."""

    id: str | None
    inputs: list[np.ndarray]
    outputs: list[str]
    binary_outputs: set[str]
    rows: int


def split_body(body: bytes, header_length: str | None) -> tuple[dict[str, Any], bytes]:
    """(the JSON header as a dict, the binary part after it)."""
    if header_length is None:
        json_part, binary = body, b""
    else:
        try:
            n = int(header_length)
        except ValueError:
            raise ProtocolError(f"Inference-Header-Content-Length must be an integer, got {header_length[:40]!r}") from None
        if not 0 < n <= len(body):
            raise ProtocolError(f"Inference-Header-Content-Length is {n}, but the body holds {len(body)} bytes")
        json_part, binary = body[:n], body[n:]
    try:
        header = json.loads(json_part, parse_constant=no_constant)
    except (ValueError, RecursionError) as err:
        raise ProtocolError(f"the request body is not valid JSON: {str(err)[:200]}") from None
    if not isinstance(header, dict):
        raise ProtocolError(f"the request must be a JSON object with an 'inputs' list, got {type(header).__name__}")
    return header, binary


def no_constant(name: str) -> Any:
    """json.loads' parse_constant: NaN and Infinity are not numbers a request may carry."""
    raise ValueError(f"{name} is not allowed in a request; send finite numbers")


def decode_request(header: dict[str, Any], binary: bytes, signature: Signature, *, max_rows: int) -> InferRequest:
    """Check and decode an infer request against the model's inputs."""
    raw_inputs = header.get("inputs")
    if not isinstance(raw_inputs, list) or not raw_inputs:
        raise ProtocolError("the request needs a non-empty 'inputs' list of {name, shape, datatype, data}")
    expected = {t.name: t for t in signature.inputs}
    given: dict[str, np.ndarray] = {}
    offset = 0
    for item in raw_inputs:
        if not isinstance(item, dict):
            raise ProtocolError("each entry of 'inputs' must be an object {name, shape, datatype, data}")
        name = item.get("name")
        if not isinstance(name, str) or len(name) > MAX_NAME:
            raise ProtocolError("each input needs a 'name' string")
        if name not in expected:
            raise ProtocolError(f"unknown input '{name[:60]}'; this model takes: {', '.join(expected)}")
        if name in given:
            raise ProtocolError(f"input '{name}' is given twice")
        array, offset = _decode_tensor(item, expected[name], binary, offset, max_rows)
        given[name] = array
    if offset != len(binary):
        raise ProtocolError(f"the body holds {len(binary) - offset} bytes of binary data that no input's binary_data_size claims")
    missing = [n for n in expected if n not in given]
    if missing:
        raise ProtocolError(f"missing input(s): {', '.join(missing)}")
    arrays = [given[t.name] for t in signature.inputs]
    rows = {a.shape[0] for a in arrays}
    if len(rows) != 1:
        raise ProtocolError(f"inputs disagree on the batch size: {sorted(rows)}")
    return InferRequest(_request_id(header), arrays, *_requested_outputs(header, signature), rows=rows.pop())


def _decode_tensor(item: dict[str, Any], spec: TensorSpec, binary: bytes, offset: int, max_rows: int) -> tuple[np.ndarray, int]:
    name, want = spec.name, datatype(spec)
    dt = item.get("datatype")
    if dt != want:
        raise ProtocolError(f"input '{name}' must have datatype {want}, got {str(dt)[:20]!r}")
    shape = item.get("shape")
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) for d in shape):
        raise ProtocolError(f"input '{name}' needs a 'shape' list of integers")
    expected = [None if d == -1 else d for d in spec.shape]
    if len(shape) != len(expected) or any(e is not None and e != d for e, d in zip(expected, shape)):
        raise ProtocolError(f"input '{name}' must have shape {spec.shape} (-1: the batch size), got {shape[:8]}")
    if not 1 <= shape[0] <= max_rows:
        raise ProtocolError(f"input '{name}' has batch size {shape[0]}; this server takes 1 to {max_rows} rows per request")
    count = math.prod(shape)
    dtype = DATATYPES[want]
    params = item.get("parameters") or {}
    if not isinstance(params, dict):
        raise ProtocolError(f"input '{name}': 'parameters' must be an object")
    if "binary_data_size" in params:
        size = params["binary_data_size"]
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ProtocolError(f"input '{name}': binary_data_size must be a non-negative integer")
        if size != count * dtype.itemsize:
            raise ProtocolError(f"input '{name}': binary_data_size {size} does not match shape {shape} of {want} ({count * dtype.itemsize} bytes)")
        if offset + size > len(binary):
            raise ProtocolError(f"input '{name}': binary_data_size {size} runs past the end of the body ({len(binary) - offset} bytes left)")
        array = np.frombuffer(binary, dtype=dtype.newbyteorder("<"), count=count, offset=offset).astype(dtype, copy=True).reshape(shape)
        offset += size
    else:
        if "data" not in item:
            raise ProtocolError(f"input '{name}' needs 'data' (or parameters.binary_data_size with the binary extension)")
        array = _json_array(item["data"], shape, dtype, name, count)
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise ProtocolError(f"input '{name}' holds NaN or infinity; send finite numbers")
    return array, offset


def _json_array(data: Any, shape: list[int], dtype: np.dtype, name: str, count: int) -> np.ndarray:
    flat = _flatten(data, count, name)
    if len(flat) != count:
        raise ProtocolError(f"input '{name}' has {len(flat)} values; shape {shape} needs {count}")
    kind = dtype.kind
    for v in flat:
        ok = isinstance(v, bool) if kind == "b" else (isinstance(v, int) and not isinstance(v, bool)) if kind in "iu" else (isinstance(v, (int, float)) and not isinstance(v, bool))
        if not ok:
            raise ProtocolError(f"input '{name}' holds {type(v).__name__} {str(v)[:20]!r}, not a {dtype.name} value")
    try:
        with np.errstate(over="raise", invalid="raise"):
            array = np.array(flat, dtype=dtype)
    except (OverflowError, FloatingPointError, ValueError):
        raise ProtocolError(f"input '{name}' holds values outside the range of {dtype.name}") from None
    return array.reshape(shape)


def _flatten(data: Any, limit: int, name: str) -> list[Any]:
    """Row-major flat values of a flat or nested list, stopping past `limit` (no unbounded work)."""
    if not isinstance(data, list):
        raise ProtocolError(f"input '{name}': 'data' must be a list")
    out: list[Any] = []
    stack = [iter(data)]
    while stack:
        for v in stack[-1]:
            if isinstance(v, list):
                stack.append(iter(v))
                break
            out.append(v)
            if len(out) > limit:
                raise ProtocolError(f"input '{name}' has more values than its shape's {limit}")
        else:
            stack.pop()
    return out


def _request_id(header: dict[str, Any]) -> str | None:
    rid = header.get("id")
    if rid is None:
        return None
    if not isinstance(rid, str) or len(rid) > MAX_NAME:
        raise ProtocolError("'id' must be a string of at most 256 characters")
    return rid


def _requested_outputs(header: dict[str, Any], signature: Signature) -> tuple[list[str], set[str]]:
    names = [t.name for t in signature.outputs]
    params = header.get("parameters") or {}
    all_binary = bool(params.get("binary_data_output")) if isinstance(params, dict) else False
    asked = header.get("outputs")
    if asked is None:
        return names, set(names) if all_binary else set()
    if not isinstance(asked, list):
        raise ProtocolError("'outputs' must be a list of {name, parameters}")
    chosen, binary = [], set()
    for item in asked:
        name = item.get("name") if isinstance(item, dict) else None
        if name not in names:
            raise ProtocolError(f"unknown output {str(name)[:60]!r}; this model gives: {', '.join(names)}")
        chosen.append(name)
        p = item.get("parameters") or {}
        if all_binary or (isinstance(p, dict) and p.get("binary_data")):
            binary.add(name)
    return chosen, binary


def encode_response(model: str, version: str, request: InferRequest, outputs: dict[str, np.ndarray], signature: Signature) -> tuple[bytes, dict[str, str]]:
    """(body, extra headers): JSON, or JSON then the binary outputs with Inference-Header-Content-Length."""
    specs = {t.name: t for t in signature.outputs}
    entries, blobs = [], []
    for name in request.outputs:
        array = np.ascontiguousarray(outputs[name])
        entry: dict[str, Any] = {"name": name, "datatype": datatype(specs[name]), "shape": list(array.shape)}
        if name in request.binary_outputs:
            blob = array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes()
            entry["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            entry["data"] = array.reshape(-1).tolist()
        entries.append(entry)
    body: dict[str, Any] = {"model_name": model, "model_version": version, "outputs": entries}
    if request.id is not None:
        body["id"] = request.id
    text = json.dumps(body, allow_nan=False).encode()
    if not blobs:
        return text, {"content-type": "application/json"}
    return text + b"".join(blobs), {"content-type": "application/octet-stream", HEADER_LENGTH: str(len(text))}
