"""`strata sample`: PNG + .npy from a trained generative run; clear errors for options that do not apply."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from deepstrata.cli.main import main


@pytest.fixture(scope="module")
def cvae_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from deepstrata.api import train

    out = tmp_path_factory.mktemp("runs")
    recipe = {
        "name": "digits_cvae_tiny", "seed": 0, "task": "generative", "output_dir": str(out),
        "data": {"name": "digits", "batch_size": 64},
        "model": {"name": "cvae", "latent_dim": 2, "hidden": [32]},
        "trainer": {"max_epochs": 1, "max_steps": 3, "progress": "off", "num_threads": 1},
        "callbacks": [{"name": "sample_grid", "n": 20}],
    }  # fmt: skip
    return train(recipe).run_dir


def test_sample_writes_png_and_npy_for_a_class(cvae_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sample", str(cvae_run), "--n", "12", "--class", "3"]) == 0
    arr = np.load(cvae_run / "samples" / "sample_n12_class3.npy", allow_pickle=False)
    assert arr.shape == (12, 1, 8, 8) and 0 <= arr.min() and arr.max() <= 1
    png = cvae_run / "samples" / "sample_n12_class3.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "wrote" in capsys.readouterr().out


def test_same_seed_same_samples(cvae_run: Path, tmp_path: Path) -> None:
    for name in ("a", "b"):
        assert main(["sample", str(cvae_run), "--n", "5", "--seed", "7", "--out", str(tmp_path / name)]) == 0
    assert np.array_equal(np.load(tmp_path / "a.npy"), np.load(tmp_path / "b.npy"))


@pytest.mark.parametrize(
    "args,message",
    [(["--class", "12"], "outside 0..9"), (["--steps", "50"], "diffusion models"), (["--guidance", "2"], "conditional diffusion"), (["--n", "0"], "at least 1")],
)
def test_options_that_do_not_apply_are_one_line_errors(cvae_run: Path, args: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sample", str(cvae_run), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_report_has_the_generative_sections(cvae_run: Path) -> None:
    html = (cvae_run / "report.html").read_text()
    for title in ("Samples over training", "Objective terms per epoch", "Latent space"):
        assert title in html
    assert "Confusion matrix" not in html  # a generative run on labelled data is not a classifier
