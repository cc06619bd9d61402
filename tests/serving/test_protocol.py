"""The protocol codec: JSON and binary tensors decoded exactly, every malformed request a 400 with a reason."""

from __future__ import annotations

import json

import numpy as np
import pytest

from deepstrata.export.signature import Signature, TensorSpec
from deepstrata.serving.protocol import ProtocolError, decode_request, encode_response, split_body

SIG = Signature([TensorSpec("x", "float32", [-1, 2, 3])], [TensorSpec("output", "float32", [-1, 4])])
TWO = Signature([TensorSpec("x", "float32", [-1, 3]), TensorSpec("ids", "int64", [-1, 2])], [TensorSpec("a", "float32", [-1]), TensorSpec("b", "int64", [-1, 2])])


def _json(x: np.ndarray, name: str = "x", datatype: str = "FP32", **extra) -> dict:
    return {"inputs": [{"name": name, "shape": list(x.shape), "datatype": datatype, "data": x.ravel().tolist(), **extra}]}


def test_json_flat_and_nested_data_decode_to_the_same_array() -> None:
    x = np.arange(12, dtype=np.float32).reshape(2, 2, 3) / 7
    flat = decode_request(_json(x), b"", SIG, max_rows=8)
    nested = decode_request({"inputs": [{"name": "x", "shape": [2, 2, 3], "datatype": "FP32", "data": x.tolist()}]}, b"", SIG, max_rows=8)
    np.testing.assert_array_equal(flat.inputs[0], x)
    np.testing.assert_array_equal(nested.inputs[0], x)
    assert flat.rows == 2 and flat.outputs == ["output"] and not flat.binary_outputs


def test_binary_inputs_follow_the_json_header_in_order() -> None:
    x = np.random.default_rng(0).random((3, 3), dtype=np.float32)
    ids = np.arange(6, dtype=np.int64).reshape(3, 2)
    header = {
        "id": "r1",
        "inputs": [
            {"name": "ids", "shape": [3, 2], "datatype": "INT64", "parameters": {"binary_data_size": ids.nbytes}},
            {"name": "x", "shape": [3, 3], "datatype": "FP32", "parameters": {"binary_data_size": x.nbytes}},
        ],
        "outputs": [{"name": "b", "parameters": {"binary_data": True}}, {"name": "a"}],
    }
    text = json.dumps(header).encode()
    got_header, binary = split_body(text + ids.tobytes() + x.tobytes(), str(len(text)))
    req = decode_request(got_header, binary, TWO, max_rows=8)
    np.testing.assert_array_equal(req.inputs[0], x)  # in the model's order, whatever the request's
    np.testing.assert_array_equal(req.inputs[1], ids)
    assert req.id == "r1" and req.outputs == ["b", "a"] and req.binary_outputs == {"b"}


def test_encoding_returns_json_or_json_then_binary() -> None:
    req = decode_request({"id": "q", "inputs": [{"name": "x", "shape": [1, 2, 3], "datatype": "FP32", "data": [0] * 6}], "parameters": {"binary_data_output": True}}, b"", SIG, max_rows=4)
    out = np.arange(4, dtype=np.float32)[None]
    body, headers = encode_response("m", "1", req, {"output": out}, SIG)
    n = int(headers["inference-header-content-length"])
    meta = json.loads(body[:n])
    assert meta["id"] == "q" and meta["outputs"][0]["parameters"]["binary_data_size"] == 16
    np.testing.assert_array_equal(np.frombuffer(body[n:], dtype="<f4"), out.ravel())
    req.binary_outputs.clear()
    body, headers = encode_response("m", "1", req, {"output": out}, SIG)
    assert json.loads(body)["outputs"][0]["data"] == [0.0, 1.0, 2.0, 3.0] and headers["content-type"] == "application/json"


BAD = [
    ({"inputs": []}, "non-empty 'inputs'"),
    ({"inputs": [{"name": "y", "shape": [1, 2, 3], "datatype": "FP32", "data": [0] * 6}]}, "unknown input 'y'"),
    ({"inputs": [{"name": "x", "shape": [1, 2, 3], "datatype": "INT64", "data": [0] * 6}]}, "must have datatype FP32"),
    ({"inputs": [{"name": "x", "shape": [1, 3, 2], "datatype": "FP32", "data": [0] * 6}]}, "must have shape"),
    ({"inputs": [{"name": "x", "shape": [1, 2, 3], "datatype": "FP32", "data": [0] * 5}]}, "has 5 values; shape"),
    ({"inputs": [{"name": "x", "shape": [10**12, 2, 3], "datatype": "FP32", "data": [0] * 6}]}, "batch size 1000000000000"),
    ({"inputs": [{"name": "x", "shape": [1, 2, 3], "datatype": "FP32", "data": ["a"] * 6}]}, "holds str"),
    ({"inputs": [{"name": "x", "shape": [1, 2, 3], "datatype": "FP32", "data": [True] * 6}]}, "holds bool"),
    ({"inputs": [{"name": "x", "shape": [1, 2, 3], "datatype": "FP32", "data": [1e300] * 6}]}, "outside the range"),
    ({"inputs": [{"name": "x", "shape": [1, 2, 3], "datatype": "FP32"}]}, "needs 'data'"),
    ({"inputs": [{"name": "x", "shape": [1, 2, 3], "datatype": "FP32", "data": [0] * 6}] * 2}, "given twice"),
    ({"inputs": [{"name": "x", "shape": [1, 2, 3], "datatype": "FP32", "data": [0] * 6, "parameters": {"binary_data_size": 24}}]}, "runs past the end"),
    ({"inputs": [{"name": "x", "shape": [1, 2, 3], "datatype": "FP32", "parameters": {"binary_data_size": 23}}]}, "does not match shape"),
    ({"inputs": [{"name": "x", "shape": [1, 2, 3], "datatype": "FP32", "data": [0] * 6}], "outputs": [{"name": "nope"}]}, "unknown output"),
    ({"inputs": [{"name": "x", "shape": "1,2,3", "datatype": "FP32", "data": [0] * 6}]}, "'shape' list of integers"),
]


@pytest.mark.parametrize(("request_", "reason"), BAD)
def test_malformed_requests_are_refused_with_their_reason(request_: dict, reason: str) -> None:
    with pytest.raises(ProtocolError, match=reason) as info:
        decode_request(request_, b"", SIG, max_rows=64)
    assert info.value.status == 400


def test_json_constants_nan_and_lying_header_lengths_are_refused() -> None:
    with pytest.raises(ProtocolError, match="NaN is not allowed"):
        split_body(b'{"inputs": [NaN]}', None)
    with pytest.raises(ProtocolError, match="body holds 3 bytes"):
        split_body(b"{}x", "10")
    with pytest.raises(ProtocolError, match="must be an integer"):
        split_body(b"{}", "ten")
    nan = np.full((1, 2, 3), np.nan, dtype=np.float32)
    header = {"inputs": [{"name": "x", "shape": [1, 2, 3], "datatype": "FP32", "parameters": {"binary_data_size": 24}}]}
    with pytest.raises(ProtocolError, match="NaN or infinity"):
        decode_request(header, nan.tobytes(), SIG, max_rows=4)
    with pytest.raises(ProtocolError, match="no input's binary_data_size claims"):
        decode_request(_json(np.zeros((1, 2, 3), np.float32)), b"extra", SIG, max_rows=4)


def test_data_longer_than_its_shape_stops_early() -> None:
    """A million values for a shape of six: refused as soon as the seventh is read."""
    with pytest.raises(ProtocolError, match="more values than its shape's 6"):
        decode_request({"inputs": [{"name": "x", "shape": [1, 2, 3], "datatype": "FP32", "data": [[0.0] * 1000] * 1000}]}, b"", SIG, max_rows=4)
