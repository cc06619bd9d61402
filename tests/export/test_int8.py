"""`strata export RUN --int8 dynamic|static`: ONNX Runtime int8 files that agree with their float parent, or none at all."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from deepstrata import api
from deepstrata.errors import UserError
from deepstrata.export.onnx_file import OnnxModel, read_metadata
from deepstrata.export.onnx_int8 import argmax_agreement
from deepstrata.run.run import Run
from deepstrata.tools.base import apply_tool
from deepstrata.tools.export import latest_export

pytestmark = [pytest.mark.xdist_group("export"), pytest.mark.e2e]

RECIPE = {
    "name": "int8_cnn",
    "seed": 0,
    "data": {"name": "digits", "batch_size": 32},
    "model": {"name": "small_cnn", "widths": [16, 32]},
    "optimizer": {"name": "adam", "lr": 0.003},
    "trainer": {"max_epochs": 8, "progress": "off", "num_threads": 1},
}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return api.train({**RECIPE, "output_dir": str(tmp_path_factory.mktemp("int8") / "runs")}).run_dir


@pytest.mark.parametrize("method", ["dynamic", "static"])
def test_int8_file_is_smaller_agrees_with_the_float_file_and_keeps_the_metadata(run_dir: Path, method: str) -> None:
    result = apply_tool("export", run_dir, int8=method)
    folder = result.result_dir
    int8, fp32 = folder / "model.onnx", folder / "model.fp32.onnx"
    assert int8.stat().st_size < fp32.stat().st_size and latest_export(Run.open(run_dir)) == int8
    # the agreement the tool reports is the one we measure on the whole test split
    run = Run.open(run_dir)
    x = np.concatenate([b[0].numpy() for b in run.loader("test")])
    a, b = OnnxModel(fp32).run(x)[0], OnnxModel(int8).run(x)[0]
    row = result.tables["int8"][0]
    assert row["agreement"] == pytest.approx(argmax_agreement(a, b)) and row["agreement"] >= 0.99 and row["rows"] == len(x)
    assert result.metrics["export/int8/size_ratio"] == pytest.approx(fp32.stat().st_size / int8.stat().st_size)
    assert not np.allclose(a, b)  # it is a different computation, not a copy of the float file
    meta = read_metadata(int8)
    assert meta["quantization"] == {"method": method, "runtime": "onnxruntime", "bits": 8}
    assert meta["signature"] == read_metadata(fp32)["signature"] and OnnxModel(int8).signature is not None


def test_an_int8_file_that_disagrees_too_often_is_not_kept(run_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The gate, with the agreement forced low (on this model every real int8 file agrees on >= 99%)."""
    import deepstrata.export.onnx_int8 as onnx_int8

    before = len(Run.open(run_dir).tool_results("export"))
    monkeypatch.setattr(onnx_int8, "argmax_agreement", lambda a, b: 0.5)
    with pytest.raises(UserError, match=r"only 50\.00% of the test rows .* it was not kept"):
        apply_tool("export", run_dir, int8="dynamic")
    assert len(Run.open(run_dir).tool_results("export")) == before
    assert not [p for p in (Path(run_dir) / "tools").iterdir() if p.name.startswith(".export-")]  # the scratch folder is gone


def test_int8_options_are_refused_where_they_cannot_apply(run_dir: Path) -> None:
    with pytest.raises(UserError, match="apply to --format onnx only"):
        apply_tool("export", run_dir, format="pt2", int8="static")
    with pytest.raises(UserError, match="weights inside the ONNX file"):
        apply_tool("export", run_dir, int8="static", external_data="external")
