"""`strata export`: ONNX and .pt2 files that reproduce the run, carry its metadata, and stay safe.

The files are opened the way their users open them (ONNX Runtime, `torch.export.load` through
the no-pickle check) and compared with the run's own predictor on real digits; a derived run
(isotonic calibration, a table map) exports the same way; a file whose external data points
outside its folder, or a .pt2 holding pickle, is refused.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from deepstrata import api
from deepstrata.cli.main import main
from deepstrata.errors import UserError
from deepstrata.export.onnx_file import OnnxModel, external_locations
from deepstrata.export.pt2_file import check_no_pickle, read_pt2
from deepstrata.run.run import Run
from deepstrata.tools.export import latest_export

pytestmark = [pytest.mark.xdist_group("tools"), pytest.mark.e2e]

RECIPE = {
    "name": "export_cnn",
    "seed": 0,
    "data": {"name": "digits", "batch_size": 32, "val_fraction": 0.25},
    "model": {"name": "small_cnn", "widths": [8, 16]},
    "trainer": {"max_epochs": 2, "progress": "off", "num_threads": 1},
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return api.train({**RECIPE, "output_dir": str(tmp_path_factory.mktemp("export") / "runs")}).run_dir


def _raw_digits(n: int = 9) -> np.ndarray:
    """Digits as scikit-learn stores them (8x8, grey levels 0..16): what a user would send."""
    from sklearn.datasets import load_digits

    return load_digits().images[:n].astype(np.float32)


def _preprocess(raw: np.ndarray, steps: dict) -> np.ndarray:
    """The metadata's formula, applied by hand as a user without deepstrata would."""
    return (((raw * steps["scale"] - np.asarray(steps["mean"])) / np.asarray(steps["std"])) - np.asarray(steps["normalize_mean"])) / np.asarray(steps["normalize_std"])


def test_onnx_file_reproduces_the_predictor_from_its_metadata_alone(trained: Path) -> None:
    result = api.apply("export", trained, format="onnx")
    run = Run.open(trained)
    path = latest_export(run, "onnx")
    assert path == result.result_dir / "model.onnx" and sorted(p.name for p in result.result_dir.iterdir()) == ["model.onnx", "result.json"]
    assert result.metrics["export/max_abs_diff"] <= 1e-4 and result.metrics["export/bytes"] == path.stat().st_size
    assert not [p for p in (trained / "tools").iterdir() if p.name.startswith(".")]  # the scratch folder is gone
    session = OnnxModel(path)
    meta = session.metadata
    assert meta["model"]["architecture"] == "small_cnn" and meta["model"]["class_names"] == run.class_names
    assert meta["model"]["input_spec"] == run.spec["input_spec"]
    assert meta["signature"]["inputs"][0]["shape"][0] == -1 and meta["source"]["recipe"] == "export_cnn"
    predictor = run.predictor()
    raw, _ = predictor.prepare(_raw_digits())
    x = _preprocess(raw.astype(np.float32), meta["preprocessing"]).astype(np.float32)
    np.testing.assert_allclose(x, predictor.preprocess(raw).numpy(), atol=1e-6)
    probs = torch.from_numpy(session.run(x)[0]).softmax(1).numpy()
    rows = predictor.predict(raw, top_k=1)
    assert [int(p.argmax()) for p in probs] == [int(r["label"]) for r in rows]
    np.testing.assert_allclose([float(p.max()) for p in probs], [r["probability"] for r in rows], atol=1e-5)


def test_pt2_file_holds_no_pickle_and_reloads(trained: Path) -> None:
    result = api.apply("export", trained, format="pt2")
    path = result.result_dir / "model.pt2"
    with zipfile.ZipFile(path) as archive:
        assert all(i.file_size == 0 for i in archive.infolist() if "sample_inputs" in i.filename)
    program, meta = read_pt2(path)
    assert meta["model"]["architecture"] == "small_cnn" and meta["preprocessing"]["scale"] == Run.open(trained).spec["input_spec"]["scale"]
    x = torch.rand(5, *meta["signature"]["inputs"][0]["shape"][1:])
    with torch.no_grad():
        torch.testing.assert_close(program.module()(x)[0], Run.open(trained).model().eval()(x), rtol=0, atol=1e-5)


def test_a_pt2_file_saved_with_pickle_is_refused(trained: Path, tmp_path: Path) -> None:
    """torch.export.save on its own pickles the example inputs; torch.export.load would unpickle them."""
    model = Run.open(trained).model().eval()
    exported = torch.export.export(model, (torch.rand(2, 1, 8, 8),))
    torch.export.save(exported, str(tmp_path / "plain.pt2"))
    with pytest.raises(UserError, match="pickled example inputs"):
        check_no_pickle(tmp_path / "plain.pt2")
    (tmp_path / "junk.pt2").write_bytes(b"not a zip")
    with pytest.raises(UserError, match="not a .pt2 archive"):
        read_pt2(tmp_path / "junk.pt2")


def test_external_data_stays_beside_the_graph_and_an_escaping_location_is_refused(trained: Path, tmp_path: Path) -> None:
    import onnx

    result = api.apply("export", trained, format="onnx", external_data="external")
    folder = result.result_dir
    assert sorted(p.name for p in folder.iterdir()) == ["model.onnx", "model.onnx.data", "result.json"]
    assert external_locations(folder / "model.onnx") == ["model.onnx.data"]
    x = torch.rand(3, 1, 8, 8)
    got = OnnxModel(folder / "model.onnx").run(x.numpy())[0]
    with torch.no_grad():
        np.testing.assert_allclose(got, Run.open(trained).model().eval()(x).numpy(), atol=1e-5)
    # A hostile copy: its first external tensor points two folders up.
    proto = onnx.load(str(folder / "model.onnx"), load_external_data=False)
    tensor = next(t for t in proto.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL)
    next(e for e in tensor.external_data if e.key == "location").value = "../../secret.data"
    (tmp_path / "evil").mkdir()
    onnx.save_model(proto, str(tmp_path / "evil" / "model.onnx"))
    with pytest.raises(UserError, match="outside"):
        OnnxModel(tmp_path / "evil" / "model.onnx")


def test_the_legacy_exporter_is_a_working_fallback(trained: Path) -> None:
    result = api.apply("export", trained, format="onnx", exporter="legacy")
    session = OnnxModel(result.result_dir / "model.onnx")
    assert session.metadata["model"]["architecture"] == "small_cnn" and result.metrics["export/max_abs_diff"] <= 1e-4


def test_a_calibrated_run_exports_its_calibrated_probabilities(trained: Path) -> None:
    """Isotonic regression is a table map (no searchsorted in ONNX); the file serves what `evaluate` scores."""
    derived = api.apply("calibrate", trained, method="isotonic").run_dir
    result = api.apply("export", derived, format="onnx")
    run = Run.open(derived)
    assert run.architecture == "calibrated"
    x = next(iter(run.loader("test")))[0][:16]
    got = OnnxModel(result.result_dir / "model.onnx").run(x.numpy())[0]
    with torch.no_grad():
        np.testing.assert_allclose(got, run.model().eval()(x).numpy(), atol=1e-4)
    assert OnnxModel(result.result_dir / "model.onnx").metadata["source"]["lineage"][-1]["tool"] == "calibrate"


def test_an_export_that_differs_from_the_model_is_not_kept(trained: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = {p for p in (trained / "tools").rglob("*")}
    real_run = OnnxModel.run
    monkeypatch.setattr(OnnxModel, "run", lambda self, *xs: [o + 1e-3 for o in real_run(self, *xs)])
    with pytest.raises(UserError, match="differs from the eager model by up to 0.001"):
        api.apply("export", trained, format="onnx")
    assert {p for p in (trained / "tools").rglob("*")} == before  # no file, no result, no scratch left behind


def test_cli_prints_json_and_refuses_bad_arguments(trained: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", str(trained), "--format", "pt2", "--json"]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert json.loads(line)["metrics"]["export/files"] == 1.0
    assert main(["export", str(trained), "--format", "pt2", "--exporter", "legacy"]) != 0
    assert "apply to --format onnx only" in capsys.readouterr().err
    assert main(["export", str(trained), "--format", "tflite"]) != 0
