"""`strata ensemble`: members are checked, the derived run reloads from model.json and evaluates to the mean probability."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from deepstrata import api
from deepstrata.cli.main import main
from deepstrata.errors import UserError
from deepstrata.models.ensemble import EnsembleModel
from deepstrata.run.run import Run

from tests.tools.digits_jsonl import write_digits_jsonl

pytestmark = pytest.mark.xdist_group("tools")


def digits_recipe(root: Path, out: Path, **model: Any) -> dict[str, Any]:
    return {
        "name": "ens_digits",
        "data": {"name": "jsonl", "root": str(root), "standardize": False, "batch_size": 64},
        "model": {"name": "mlp", "hidden": [32], "dropout": 0.2, **model},
        "optimizer": {"name": "adamw", "lr": 0.01},
        "trainer": {"max_epochs": 2, "progress": "off", "num_threads": 1},
        "metrics": ["accuracy"],
        "output_dir": str(out),
    }


@pytest.fixture(scope="module")
def members(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    base = tmp_path_factory.mktemp("ensemble")
    recipe = digits_recipe(write_digits_jsonl(base / "data"), base / "runs")
    return [api.train({**recipe, "seed": seed}).run_dir for seed in range(3)]


def _test_probs(run: Run) -> tuple[torch.Tensor, torch.Tensor]:
    model, task = run.model(), run.task()
    probs, labels = [], []
    with torch.no_grad():
        for batch in run.loader("test"):
            probs.append(model(*task.model_inputs(batch)).softmax(1))
            labels.append(batch[1])
    return torch.cat(probs), torch.cat(labels)


def test_the_ensemble_run_reloads_and_evaluates_to_the_mean_probability(members: list[Path]) -> None:
    result = api.apply("ensemble", members[0], members=[str(p) for p in members[1:]])
    derived = Run.open(result.run_dir)
    assert result.metrics["members"] == 3.0
    assert derived.spec["architecture"] == "ensemble"
    assert [m["architecture"] for m in derived.spec["kwargs"]["members"]] == ["mlp"] * 3
    assert derived.info["split"] == Run.open(members[0]).info["split"] and derived.derived_from["tool"] == "ensemble"
    model = Run.open(result.run_dir).model()  # rebuilt from model.json + model.safetensors alone
    assert isinstance(model, EnsembleModel) and len(model.members) == 3

    per_member = [_test_probs(Run.open(p)) for p in members]
    labels = per_member[0][1]
    mean = torch.stack([p for p, _ in per_member]).mean(0)  # (N, K): the mean probability, by hand
    accuracy = float((mean.argmax(1) == labels).double().mean())
    nll = float(-mean[torch.arange(len(labels)), labels].log().mean())
    metrics = derived.evaluate("test")
    assert metrics["test/accuracy"] == pytest.approx(accuracy, abs=1e-6)
    assert metrics["test/loss"] == pytest.approx(nll, rel=1e-5)
    assert len({round(float((p.argmax(1) == labels).double().mean()), 4) for p, _ in per_member} | {round(accuracy, 4)}) > 1  # the members differ
    assert "Derived from" in (derived.path / "report.html").read_text()


def test_the_command_line_makes_a_run_that_predicts_and_reports(members: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ensemble", str(members[0]), "--members", f"{members[1]},{members[2]}", "--json"]) == 0
    run_dir = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["run_dir"]
    derived = Run.open(run_dir)
    x = next(iter(derived.loader("test")))[0][:1]  # (1, 64): raw values, as the dataset stores them
    np.save(tmp_path / "row.npy", x.numpy())
    assert main(["predict", run_dir, str(tmp_path / "row.npy"), "--json"]) == 0
    predicted = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    with torch.no_grad():
        mean = torch.stack([Run.open(p).model()(x).softmax(1) for p in members]).mean(0)[0]
    assert predicted["label"] == int(mean.argmax()) and predicted["probability"] == pytest.approx(float(mean.max()), abs=1e-5)
    assert main(["report", run_dir]) == 0


def test_members_of_another_recipe_are_refused(members: list[Path], tmp_path: Path) -> None:
    recipe = digits_recipe(Path(Run.open(members[0]).config["data"]["root"]), tmp_path / "runs", hidden=[16])
    other = api.train({**recipe, "seed": 1, "trainer": {**recipe["trainer"], "max_steps": 1}}).run_dir
    with pytest.raises(UserError, match=r"not the same recipe .* up to the seed: model\.hidden: \[16\] != \[32\]"):
        api.apply("ensemble", members[0], members=[str(other)])


def test_members_tested_on_another_split_are_refused(tmp_path: Path) -> None:
    """digits without an official test part: each seed draws its own test rows, so the members cannot be compared."""
    recipe = {
        "name": "ens_split",
        "data": {"name": "digits", "batch_size": 64},
        "model": {"name": "mlp", "in_features": 64, "num_classes": 10, "hidden": [8]},
        "trainer": {"max_epochs": 1, "max_steps": 1, "progress": "off", "num_threads": 1},
        "output_dir": str(tmp_path / "runs"),
    }
    a, b = (api.train({**recipe, "seed": s}).run_dir for s in (0, 1))
    with pytest.raises(UserError, match=r"another test split .*split\.test_indices_sha256"):
        api.apply("ensemble", a, members=[str(b)])


def test_no_members_or_a_repeated_member_is_refused(members: list[Path]) -> None:
    with pytest.raises(UserError, match="--members RUN2,RUN3"):
        api.apply("ensemble", members[0])
    with pytest.raises(UserError, match="given twice"):
        api.apply("ensemble", members[0], members=[str(members[1]), str(members[1])])


def test_only_the_seed_and_settings_that_cannot_change_the_weights_may_differ(tmp_path: Path) -> None:
    from deepstrata.tools.ensemble import _differences, _recipe_without_free_keys

    base = {"name": "r", "seed": 0, "output_dir": "a", "model": {"name": "mlp"}, "trainer": {"max_epochs": 2, "progress": "off", "log_every_n_steps": 1}}
    same = {**base, "seed": 3, "output_dir": "b", "trainer": {"max_epochs": 2, "progress": "lines", "log_every_n_steps": 50}}
    other = {**base, "trainer": {"max_epochs": 3, "progress": "off", "log_every_n_steps": 1}}

    def recipe(config: dict[str, Any]) -> dict[str, Any]:
        return _recipe_without_free_keys(Run(tmp_path, config=config))

    assert _differences(recipe(base), recipe(same)) == ""
    assert _differences(recipe(base), recipe(other)) == "trainer.max_epochs: 3 != 2"
    assert base["trainer"]["progress"] == "off"  # the run's own config is not edited
