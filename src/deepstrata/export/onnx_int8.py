"""ONNX Runtime int8: an exported float ONNX file quantized to 8-bit integers, dynamically or statically.

Problem: an fp32 ONNX file holds 4 bytes per weight and runs fp32 kernels; most CPUs run int8
matrix products faster and a quarter of the bytes moves through memory, but quantizing by hand
(scales, zero points, which activations to calibrate on) is error-prone, and an int8 model
that agrees with its float parent on 90% of inputs is a different model.
Idea: onnxruntime's own quantizer does the arithmetic.
- "dynamic": the weights of matrix products (Linear layers, MatMul/Gemm) are int8 ahead of
  time, their activations are quantized on the fly per batch (`quantize_dynamic`); no
  calibration data. Convolutions stay float (see DYNAMIC_OPS).
- "static": every supported op, weights and activations int8 (weights per output channel),
  activation ranges fixed ahead of time from calibration batches
  of the run's TRAINING split (never the split it is checked on), written in the QDQ format
  (QuantizeLinear/DequantizeLinear pairs that the runtime fuses into int8 kernels;
  `quantize_static`, MinMax calibration).
The quantized file keeps the float file's deepstrata metadata (preprocessing, class names,
signature) plus `deepstrata.quantization`, so `OnnxModel`, `strata serve --backend
onnxruntime` and any ONNX Runtime user read it like the float one. `argmax_agreement` is the
check the export tool applies before it keeps the file.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Literal

import numpy as np

from deepstrata.errors import UserError

Int8Method = Literal["dynamic", "static"]
# Dynamic quantization covers the matrix products of Linear layers (and attention, LSTM gates):
# ONNX Runtime's ConvInteger kernel, which a dynamically quantized convolution becomes, is much
# slower on CPU than its float convolution, so convolutions stay float there (use "static").
DYNAMIC_OPS = ("MatMul", "Gemm")


class _Batches:
    """onnxruntime's CalibrationDataReader over a finite stream of input batches (name -> array)."""

    def __init__(self, names: list[str], batches: Iterable[tuple[np.ndarray, ...]]):
        self.names = names
        self._it: Iterator[tuple[np.ndarray, ...]] = iter(batches)

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self._it, None)
        return None if batch is None else {n: np.ascontiguousarray(a) for n, a in zip(self.names, batch)}

    def rewind(self) -> None:  # pragma: no cover - onnxruntime calls it only for some calibrators
        raise UserError("int8 calibration batches can be read once; calibrate again from the start")


def quantize_onnx(source: Path, target: Path, *, method: Int8Method, calibration: Iterable[tuple[np.ndarray, ...]] = ()) -> Path:
    """Write `source` (a float ONNX file, weights inline) quantized to int8 as `target`; returns `target`.

    calibration: batches of model inputs (a tuple of arrays per batch, in the file's input
    order) for "static"; ignored for "dynamic".
    """
    import onnx

    from deepstrata.export.onnx_file import META_PREFIX, external_locations

    if external_locations(source):
        raise UserError("int8 quantization needs the weights inside the ONNX file; export with --external-data inline")
    proto = onnx.load(str(source))
    names = [i.name for i in proto.graph.input]
    props = {p.key: p.value for p in proto.metadata_props if p.key.startswith(META_PREFIX)}
    # The exporter's recorded intermediate shapes can disagree with ONNX's own shape inference
    # (which the quantizer runs); the quantizer infers them afresh from a copy without them.
    del proto.graph.value_info[:]
    bare = target.with_name(f".{target.stem}.bare.onnx")
    onnx.save_model(proto, str(bare))
    try:
        _quantize(bare, target, method=method, names=names, calibration=calibration)
    finally:
        bare.unlink(missing_ok=True)
    quantized = onnx.load(str(target))
    del quantized.metadata_props[:]
    for key, value in {**props, f"{META_PREFIX}quantization": json.dumps({"method": method, "runtime": "onnxruntime", "bits": 8})}.items():
        entry = quantized.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save_model(quantized, str(target))
    onnx.checker.check_model(str(target))
    return target


def _quantize(source: Path, target: Path, *, method: str, names: list[str], calibration: Iterable[tuple[np.ndarray, ...]]) -> None:
    import logging

    from deepstrata.export.program import quiet

    # onnxruntime's quantizer advises pre-processing through the root logger on every call;
    # its shape inference runs anyway, so the advice is held back (errors still show).
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with quiet():
            _run_quantizer(source, target, method=method, names=names, calibration=calibration)
    finally:
        root.setLevel(level)


def _run_quantizer(source: Path, target: Path, *, method: str, names: list[str], calibration: Iterable[tuple[np.ndarray, ...]]) -> None:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_dynamic, quantize_static

    if method == "dynamic":
        quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8, op_types_to_quantize=list(DYNAMIC_OPS))
    elif method == "static":
        reader = _Batches(names, calibration)
        quantize_static(
            str(source),
            str(target),
            reader,
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QInt8,  # S8S8: on this AVX2 CPU it ran the MNIST LeNet-5 faster than U8S8
            weight_type=QuantType.QInt8,
            per_channel=True,
            calibrate_method=CalibrationMethod.MinMax,
        )
    else:
        raise UserError(f"unknown int8 method '{method}'; choose dynamic or static")


def argmax_agreement(float_outputs: np.ndarray, int8_outputs: np.ndarray) -> float:
    """The fraction of rows whose largest output (the predicted class) is the same in both."""
    if float_outputs.shape != int8_outputs.shape or float_outputs.ndim != 2:
        raise UserError(f"the int8 file's outputs {int8_outputs.shape} do not match the float file's {float_outputs.shape}")
    return float((float_outputs.argmax(1) == int8_outputs.argmax(1)).mean())
