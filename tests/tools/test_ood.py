"""`strata ood`: out-sets brought to the run's input form, every score on a tiny digits run, the CLI, the errors."""

from __future__ import annotations

import copy
import gzip
import json
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from deepstrata import api
from deepstrata.cli.main import main
from deepstrata.data.ood_sets import fit_shape, load_out_set, to_model_space, to_raw
from deepstrata.errors import UserError
from deepstrata.run.run import Run
from deepstrata.tools.base import saved_learned
from deepstrata.tools.predictions import input_tensor
from tests.conftest import TINY_RECIPE, requires_shared_data

pytestmark = pytest.mark.xdist_group("tools")

KEYS = ("auroc", "aupr_in", "aupr_out", "fpr95")
DIGITS_SPEC = {"shape": [1, 8, 8], "scale": 1 / 16.0, "mean": 0.0, "std": 1.0, "raw_max": 16.0}


# ---------------------------------------------------------------- out-sets (data/ood_sets.py)


def test_the_input_map_is_the_predictors_and_inverts() -> None:
    spec = {"scale": 0.5, "mean": [1.0, 2.0], "std": [2.0, 4.0]}
    raw = torch.rand(3, 2, 4, 4) * 10
    x = to_model_space(raw, spec)
    assert torch.allclose(x[:, 1], (raw[:, 1] * 0.5 - 2.0) / 4.0)
    assert torch.allclose(to_raw(x, spec), raw, atol=1e-5)


def test_images_are_resized_and_converted_other_shapes_must_match() -> None:
    # grey images stored as RGB: whatever weights turn RGB into grey, the level is kept
    rgb = torch.rand(2, 1, 16, 16, generator=torch.Generator().manual_seed(0)).expand(2, 3, 16, 16).contiguous()
    grey = fit_shape(rgb, (1, 8, 8), "test")
    assert grey.shape == (2, 1, 8, 8)
    assert torch.allclose(grey.mean(), rgb.mean(), atol=1e-3)  # antialiased averaging keeps the mean level
    assert fit_shape(torch.rand(2, 8, 8), (3, 4, 4), "test").shape == (2, 3, 4, 4)
    assert fit_shape(torch.rand(2, 64), (1, 8, 8), "test").shape == (2, 1, 8, 8)  # as many values: reshaped
    with pytest.raises(UserError, match=r"shape \(5,\) each, but the model takes \(1, 8, 8\)"):
        fit_shape(torch.rand(2, 5), (1, 8, 8), "x.npy")


def test_a_registered_dataset_keeps_its_share_of_full_scale() -> None:
    """digits (0..16) into an MNIST-like model (0..255, 28x28): the brightest ink stays full scale."""
    spec = {"shape": [1, 28, 28], "scale": 1 / 255.0, "mean": 0.0, "std": 1.0, "raw_max": 255.0}
    out = load_out_set("digits", input_spec=spec, count=50, seed=0)
    assert out.x.shape == (50, 1, 28, 28) and float(out.x.min()) >= 0.0 and 0.9 < float(out.x.max()) <= 1.0
    assert "dataset 'digits'" in out.description


def test_noise_stays_in_the_raw_range() -> None:
    for kind in ("gaussian", "uniform"):
        out = load_out_set(kind, input_spec=DIGITS_SPEC, count=200, seed=1)
        assert out.x.shape == (200, 1, 8, 8) and float(out.x.min()) >= 0.0 and float(out.x.max()) <= 1.0
        assert 0.4 < float(out.x.mean()) < 0.6
    again = load_out_set("gaussian", input_spec=DIGITS_SPEC, count=200, seed=1)
    assert torch.equal(again.x, load_out_set("gaussian", input_spec=DIGITS_SPEC, count=200, seed=1).x)


def test_idx_files_and_image_folders_are_read_as_eight_bit_images(tmp_path: Path) -> None:
    images = (np.arange(3 * 28 * 28) % 256).astype(np.uint8).reshape(3, 28, 28)
    idx = tmp_path / "images-idx3-ubyte.gz"
    idx.write_bytes(gzip.compress(struct.pack(">iiii", 2051, 3, 28, 28) + images.tobytes()))
    out = load_out_set(str(idx), input_spec=DIGITS_SPEC, count=10)
    assert out.x.shape == (3, 1, 8, 8) and float(out.x.max()) <= 1.0

    from PIL import Image

    (tmp_path / "pics" / "any").mkdir(parents=True)
    for i in range(2):
        Image.fromarray(np.full((20, 20, 3), 255 * i, np.uint8)).save(tmp_path / "pics" / "any" / f"{i}.png")
    out = load_out_set(str(tmp_path / "pics"), input_spec=DIGITS_SPEC, count=10)
    assert out.x.shape == (2, 1, 8, 8)
    assert sorted(round(float(v), 3) for v in out.x.amax(dim=(1, 2, 3))) == [0.0, 1.0]  # black and white images
    with pytest.raises(UserError, match="not a registered dataset, a noise kind or an existing file; did you mean gaussian"):
        load_out_set("gausian", input_spec=DIGITS_SPEC, count=10)


# ---------------------------------------------------------------- a trained run


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny digits CNN (2 epochs, about 2 s) with dropout 0.2, so every score applies."""
    recipe = copy.deepcopy(TINY_RECIPE)
    recipe["model"]["dropout"] = 0.2
    recipe["trainer"]["num_threads"] = 1
    return api.train({**recipe, "output_dir": str(tmp_path_factory.mktemp("ood") / "runs")}).run_dir


@pytest.mark.e2e
def test_every_score_on_gaussian_noise(digits_run: Path) -> None:
    result = api.apply("ood", digits_run, ood_data="gaussian")
    names = [row["score"] for row in result.tables["scores"]]
    assert names == ["msp", "max_logit", "energy", "odin", "mahalanobis", "knn", "mc_dropout", "entropy"]
    assert set(result.metrics) == {f"ood/{n}/{k}" for n in names for k in KEYS}
    m = result.metrics
    # Measured: msp 0.72, energy 0.75, mahalanobis 0.997 (a 2-epoch 8x8 CNN: its softmax is not sure of much).
    assert m["ood/msp/auroc"] > 0.6 and m["ood/energy/auroc"] > 0.6
    assert m["ood/mahalanobis/auroc"] > 0.95 and m["ood/mahalanobis/fpr95"] < 0.1
    saved = json.loads((result.result_dir / "result.json").read_text())
    assert saved["figures"] == ["histograms.png", "roc.png"]
    assert all((result.result_dir / f).is_file() for f in saved["figures"])
    assert "360 inputs of the run's test split" in saved["summary"] and "Gaussian noise" in saved["summary"]
    # every fitted scorer is saved with the result and rebuilds without refitting, scoring as it did
    assert sorted(saved["learned"]) == sorted(f"learned/ood_{n}.json" for n in names)
    run = Run.open(digits_run)
    scorer = saved_learned(run, "ood", "ood_mahalanobis")
    model, x = run.model(), torch.stack([run.split("test")[i][0] for i in range(8)]).float()
    refit = type(scorer)().fit(model, *input_tensor(run, "train", tool="test"))  # fit_limit 0: every training input
    torch.testing.assert_close(scorer.score(model, x), refit.score(model, x))
    with pytest.raises(UserError, match="saved no learned object 'nope'"):
        saved_learned(run, "ood", "nope")


@pytest.mark.e2e
def test_npy_out_sets_the_run_test_split_itself_is_chance(digits_run: Path, tmp_path: Path) -> None:
    """The test split saved in raw units (0..16) scores exactly as the test split: AUROC 0.5 for every score;
    inverted digits (16 - raw) are told apart."""
    run = Run.open(digits_run)
    raw = torch.cat([x for x, _ in run.loader("test")]).numpy() * 16.0  # (360, 1, 8, 8) grey levels
    np.save(tmp_path / "same.npy", raw)
    np.save(tmp_path / "inverted.npy", (16.0 - raw)[:, 0])  # (N, 8, 8): the channel axis is added
    same = api.apply("ood", digits_run, ood_data=str(tmp_path / "same.npy"), scores=["msp", "knn", "mahalanobis"])
    for name in ("msp", "knn", "mahalanobis"):
        assert same.metrics[f"ood/{name}/auroc"] == pytest.approx(0.5, abs=1e-6)
    inverted = api.apply("ood", digits_run, ood_data=str(tmp_path / "inverted.npy"), scores=["energy", "mahalanobis"])
    assert inverted.metrics["ood/mahalanobis/auroc"] > 0.95 and inverted.metrics["ood/energy/auroc"] > 0.6


@pytest.mark.e2e
def test_cli_json(digits_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ood", str(digits_run), "--ood-data", "uniform", "--scores", "msp,energy", "--limit", "100", "--json"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    result = json.loads(out[-1])
    assert result["run_dir"] == str(digits_run)
    assert set(result["metrics"]) == {f"ood/{n}/{k}" for n in ("msp", "energy") for k in KEYS}
    assert any(line.startswith("result: ") for line in out)
    assert Run.open(digits_run).latest_tool_result("ood")["args"]["limit"] == 100


@pytest.mark.e2e
def test_errors_are_one_line_user_errors(digits_run: Path, tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"unknown score 'engery'; did you mean energy\? \(choices: msp, max_logit, energy"):
        api.apply("ood", digits_run, scores=["engery"])
    np.save(tmp_path / "table.npy", np.zeros((10, 5), np.float32))
    with pytest.raises(UserError, match=r"shape \(5,\) each, but the model takes \(1, 8, 8\)"):
        api.apply("ood", digits_run, ood_data=str(tmp_path / "table.npy"))


@pytest.mark.e2e
def test_runs_that_cannot_be_scored_are_refused(tmp_path: Path) -> None:
    trainer = {"max_epochs": 1, "max_steps": 2, "progress": "off", "num_threads": 1}
    regression = api.train(
        {"name": "ood_reg", "seed": 0, "data": {"name": "diabetes", "batch_size": 32}, "model": {"name": "mlp", "in_features": 10, "num_classes": 1, "hidden": [8]}, "trainer": trainer, "output_dir": str(tmp_path / "runs")}
    ).run_dir
    with pytest.raises(UserError, match="ood: .* is a regression run; ood needs a classifier"):
        api.apply("ood", regression)
    no_dropout = api.train({**copy.deepcopy(TINY_RECIPE), "trainer": trainer, "output_dir": str(tmp_path / "runs")}).run_dir
    with pytest.raises(UserError, match="score 'mc_dropout' cannot be used: SmallCNN has no dropout layer with p > 0"):
        api.apply("ood", no_dropout, scores=["mc_dropout"])
    skipped = api.apply("ood", no_dropout, limit=50)  # by default the scores that do not apply are skipped, and said so
    assert "ood/mc_dropout/auroc" not in skipped.metrics and "Skipped: mc_dropout" in skipped.summary


@requires_shared_data("mnist")
@pytest.mark.e2e
def test_mnist_images_resized_for_a_digits_run(digits_run: Path) -> None:
    result = api.apply("ood", digits_run, ood_data="mnist", scores=["msp", "mahalanobis"], limit=200)
    assert set(result.metrics) == {f"ood/{n}/{k}" for n in ("msp", "mahalanobis") for k in KEYS}
    assert 0.0 <= result.metrics["ood/msp/auroc"] <= 1.0
