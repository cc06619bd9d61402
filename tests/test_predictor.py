"""The Predictor: raw inputs through the run's preprocessing, outputs read by the run's task."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from deepstrata.errors import UserError
from deepstrata.predictor import Predictor
from deepstrata.run.run import Run


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    from deepstrata import api
    from tests.conftest import TINY_RECIPE

    out = tmp_path_factory.mktemp("runs")
    return Run.open(api.train({**TINY_RECIPE, "output_dir": str(out)}, ["trainer.max_epochs=2"]).run_dir)


def _raw_test_images(run: Run, n: int) -> tuple[np.ndarray, np.ndarray]:
    test = run.split("test")
    xs, ys = zip(*(test[i] for i in range(n)))
    return torch.stack(xs).numpy() * 16.0, torch.stack(ys).numpy()  # back to the dataset's 0..16 grey levels


def test_rows_agree_with_the_model_on_the_test_split(digits_run: Run) -> None:
    raw, _ = _raw_test_images(digits_run, 20)
    rows = digits_run.predictor().predict(raw)
    model = digits_run.model()
    with torch.no_grad():
        probs = torch.softmax(model(torch.as_tensor(raw / 16.0, dtype=torch.float32)), dim=1)
    assert [r["label"] for r in rows] == probs.argmax(1).tolist()
    assert [r["probability"] for r in rows] == pytest.approx(probs.max(1).values.tolist(), abs=1e-6)
    assert all(r["class_name"] == str(r["label"]) for r in rows)


def test_top_k_lists_the_k_most_likely_classes_in_order(digits_run: Run) -> None:
    raw, _ = _raw_test_images(digits_run, 3)
    rows = digits_run.predictor().predict(raw, top_k=3)
    for row in rows:
        probs = [t["probability"] for t in row["top_k"]]
        assert len(probs) == 3 and probs == sorted(probs, reverse=True)
        assert row["top_k"][0]["label"] == row["label"]
    with pytest.raises(UserError, match="top_k"):
        digits_run.predictor().predict(raw, top_k=0)


def test_rows_of_one_array_carry_their_index(digits_run: Run, tmp_path: Path) -> None:
    raw, _ = _raw_test_images(digits_run, 4)
    np.save(tmp_path / "four.npy", raw)
    np.save(tmp_path / "one.npy", raw[0])
    rows = digits_run.predictor().predict_files([tmp_path / "four.npy", tmp_path / "one.npy"])
    assert [r.get("row") for r in rows] == [0, 1, 2, 3, None]


def test_the_task_decides_what_a_run_reads(digits_run: Run) -> None:
    spec = {**digits_run.spec, "task": "generative"}
    with pytest.raises(UserError, match="strata sample"):
        Predictor(digits_run.model(), spec).predict(np.zeros((1, 8, 8)))
    with pytest.raises(UserError, match="reads arrays, not text"):
        digits_run.predictor().predict_text(["3 March 1987"])


def test_inputs_of_the_wrong_size_are_refused(digits_run: Run) -> None:
    with pytest.raises(UserError, match="does not fit the model's input shape"):
        digits_run.predictor().predict(np.zeros((7, 7)))
