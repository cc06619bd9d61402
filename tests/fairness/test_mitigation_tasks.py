"""Reweighing and adversarial debiasing as training tasks: what they compute, and that they narrow the gap."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from deepstrata import api
from deepstrata.errors import UserError
from deepstrata.experiment import build_experiment
from deepstrata.config import load_recipe
from deepstrata.fairness.metrics import gaps
from deepstrata.run.run import Run
from deepstrata.tasks.adversarial_debiasing import debiased_gradient
from deepstrata.tools.predictions import split_logits
from tests.fairness import toy_census

pytestmark = [pytest.mark.xdist_group("fairness"), pytest.mark.e2e]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with toy_census.registered():
        yield tmp_path_factory.mktemp("mitigation") / "runs"


@pytest.fixture(scope="module")
def plain(runs: Path) -> Path:
    return api.train(toy_census.recipe(runs)).run_dir


def dp_gap(run_dir: Path, split: str = "test") -> tuple[float, float]:
    """(demographic parity difference for sex, accuracy) of a run's argmax decisions."""
    run = Run.open(run_dir)
    z, y = split_logits(run, split)
    pred = z.argmax(1).numpy()
    return gaps(y.numpy(), pred, run.experiment().data.attributes[split]["sex"])["demographic_parity_difference"], float((pred == y.numpy()).mean())


def test_the_reweighing_task_weighs_each_training_row_by_its_cell(runs: Path) -> None:
    exp = build_experiment(load_recipe(toy_census.recipe(runs, task={"name": "reweighing", "group": "sex"})))
    x, y = (t for t in exp.data.train[:])
    w = exp.task.example_weights(x, y).double().numpy()
    sex = x[:, 2].long().numpy()
    joint = np.zeros((2, 2))
    np.add.at(joint, (sex, y.numpy()), w)
    joint /= w.sum()
    np.testing.assert_allclose(joint, np.outer(np.bincount(sex) / len(sex), np.bincount(y.numpy()) / len(y)), atol=1e-6)  # independent (float32 weights)
    # the groups read from the inputs are the data's own attributes
    assert list(np.array(toy_census.SEX)[sex]) == list(exp.data.attributes["train"]["sex"])


def test_reweighing_narrows_the_selection_rate_gap(plain: Path, runs: Path) -> None:
    reweighed = api.train(toy_census.recipe(runs, task={"name": "reweighing", "group": "sex"})).run_dir
    before, acc_before = dp_gap(plain)
    after, acc_after = dp_gap(reweighed)
    assert after < before - 0.05, (before, after)
    assert Run.open(reweighed).model()(torch.zeros(1, 4)).shape == (1, 2)  # the saved run is an ordinary classifier
    assert acc_after > 0.6


def test_debiased_gradient_removes_the_projection_and_pushes_against_the_adversary() -> None:
    gp, ga = [torch.tensor([3.0, 1.0]), torch.tensor([2.0])], [torch.tensor([1.0, 0.0]), torch.tensor([1.0])]
    step = debiased_gradient(gp, ga, alpha=0.5)
    flat_p, flat_a = torch.cat(gp), torch.cat(ga)
    expected = flat_p - (flat_p @ flat_a) / (flat_a @ flat_a) * flat_a - 0.5 * flat_a
    torch.testing.assert_close(torch.cat(step), expected)
    # with alpha 0 the step is orthogonal to the adversary's gradient: it neither helps nor hurts it
    assert float(torch.cat(debiased_gradient(gp, ga, alpha=0.0)) @ flat_a) == pytest.approx(0.0, abs=1e-6)


def test_adversarial_debiasing_narrows_the_gap_and_hides_the_group_from_an_adversary(plain: Path, runs: Path) -> None:
    debiased = api.train(toy_census.recipe(runs, task={"name": "adversarial_debiasing", "group": "sex", "alpha": 1.0})).run_dir
    before, _ = dp_gap(plain)
    after, acc = dp_gap(debiased)
    assert after < before / 2, (before, after)
    assert acc > 0.6

    # a fresh logistic adversary fitted on the validation margins, scored on the test margins
    from sklearn.linear_model import LogisticRegression

    def adversary_auc(run_dir: Path) -> float:
        from sklearn.metrics import roc_auc_score

        run = Run.open(run_dir)
        data = run.experiment().data
        fits = {}
        for split in ("val", "test"):
            z, _ = split_logits(run, split)
            fits[split] = ((z[:, 1] - z[:, 0]).numpy()[:, None], (data.attributes[split]["sex"] == "Male").astype(int))
        clf = LogisticRegression().fit(*fits["val"])
        return float(roc_auc_score(fits["test"][1], clf.predict_proba(fits["test"][0])[:, 1]))

    assert adversary_auc(debiased) < adversary_auc(plain) - 0.1


def test_a_group_that_is_not_an_input_is_refused(runs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from deepstrata.registry import DATASETS

    monkeypatch.setitem(DATASETS._items, toy_census.NAME, lambda: toy_census.toy_census(drop=["sex"]))
    for task in ("reweighing", "adversarial_debiasing"):
        with pytest.raises(UserError, match="the group 'sex' is not an input feature.*categorical inputs: race"):
            build_experiment(load_recipe(toy_census.recipe(runs, task={"name": task, "group": "sex"})))
