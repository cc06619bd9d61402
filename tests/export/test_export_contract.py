"""Registry-wide export contract: every registered model exports to ONNX and ONNX Runtime
reproduces it, or it declares in one line why it cannot, and that declaration is true.

Generated from the registry, so a new model is checked on arrival. The graph is traced once
on a batch of two with the batch size left symbolic, then run by ONNX Runtime at batch sizes
1 and 7 against eager PyTorch (the issue's bound: max absolute difference <= 1e-4).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from deepstrata.errors import UserError
from deepstrata.export.onnx_file import OnnxModel, write_onnx
from deepstrata.export.program import tile, trace
from deepstrata.export.signature import flat_outputs
from deepstrata.registry import MODELS, catalog
from tests.models.test_contract import example_batch, example_extras

pytestmark = pytest.mark.xdist_group("export")

MODEL_NAMES = sorted(catalog()["model"])
EXPORTABLE = [n for n in MODEL_NAMES if not MODELS.meta(n).get("not_exportable")]
DECLARED = [n for n in MODEL_NAMES if MODELS.meta(n).get("not_exportable")]
TOLERANCE = 1e-4


def _model_and_inputs(name: str, batch: int) -> tuple[torch.nn.Module, tuple[torch.Tensor, ...]]:
    meta = MODELS.meta(name)
    torch.manual_seed(0)
    model = MODELS.get(name)(**meta["example"].get("kwargs", {})).eval()
    return model, (example_batch(meta, batch), *example_extras(meta))


@pytest.mark.parametrize("name", EXPORTABLE)
def test_onnx_runtime_reproduces_the_eager_model(name: str, tmp_path: Path) -> None:
    model, inputs = _model_and_inputs(name, 3)
    program = trace(model, inputs, spec={"architecture": name, "kwargs": MODELS.meta(name)["example"].get("kwargs", {})})
    written = write_onnx(program, tmp_path / "model.onnx", metadata={"model": '{"architecture": "%s"}' % name})
    assert written == [tmp_path / "model.onnx"]
    session = OnnxModel(tmp_path / "model.onnx")
    assert session.metadata["model"] == {"architecture": name}
    assert session.input_names == [t.name for t in program.signature.inputs]
    for size in (1, 7):
        xs = tile(inputs, size)
        with torch.no_grad():
            eager = flat_outputs(model(*xs))
        got = session.run(*(x.numpy() for x in xs))
        assert len(got) == len(eager)
        for g, e in zip(got, eager):
            assert tuple(g.shape) == tuple(e.shape)
            assert float((torch.from_numpy(g).to(e.dtype) - e).abs().max()) <= TOLERANCE, f"{name} at batch {size}"


@pytest.mark.parametrize("name", DECLARED)
def test_a_declared_reason_is_given_and_true(name: str) -> None:
    """The reason comes first, in one line; without it torch.export really does fail (the declaration is not stale)."""
    model, inputs = _model_and_inputs(name, 3)
    reason = MODELS.meta(name)["not_exportable"]
    assert "\n" not in reason and len(reason) < 240
    with pytest.raises(UserError, match="cannot be exported") as info:
        trace(model, inputs, spec={"architecture": name, "kwargs": {}})
    assert reason in str(info.value)
    with pytest.raises(UserError, match="torch.export could not trace") as info:
        trace(model, inputs)
    assert "\n" not in str(info.value)


def test_a_wrapper_inherits_the_reason_of_the_model_it_wraps() -> None:
    from deepstrata.export.program import not_exportable_reason

    base = {"architecture": "rnn_classifier", "kwargs": {}}
    assert "rnn_classifier" in str(not_exportable_reason({"architecture": "calibrated", "kwargs": {"base": base}}))
    assert "rnn_classifier" in str(not_exportable_reason({"architecture": "ensemble", "kwargs": {"members": [{"architecture": "mlp"}, base]}}))
    assert not_exportable_reason({"architecture": "calibrated", "kwargs": {"base": {"architecture": "mlp"}}}) is None
