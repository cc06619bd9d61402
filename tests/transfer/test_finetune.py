"""Fine-tuning strategies and `strata finetune`: which tensors learn, at which rate, from which weights."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from deepstrata.errors import UserError
from deepstrata.experiment import build_experiment
from deepstrata.registry import registry
from deepstrata.transfer.finetune import finetune, finetune_recipe
from deepstrata.transfer.unfreeze import body_stages, gradual_unfreezing
from tests.conftest import TINY_RECIPE

REPO = Path(__file__).resolve().parents[2]
TINY = {**TINY_RECIPE, "trainer": {**TINY_RECIPE["trainer"], "max_epochs": 2, "num_threads": 1}}


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One short digits run, shared by the tests of this module (the 'pretrained' network)."""
    import deepstrata.api as api

    return api.train({**TINY, "output_dir": str(tmp_path_factory.mktemp("source"))}).run_dir


@pytest.fixture
def tiny_recipe() -> dict:
    return dict(TINY)


def target_recipe(tiny_recipe: dict, tmp_path: Path) -> dict:
    """The 'new task': the same digits, but a new head must be learnt from scratch."""
    return {**tiny_recipe, "name": "target", "output_dir": str(tmp_path / "ft"), "trainer": {**tiny_recipe["trainer"], "max_epochs": 2}}


def weights(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(path / "model.safetensors"))


def test_strategies_are_registered_and_listed() -> None:
    from deepstrata.catalog import list_components

    assert {"feature_extraction", "fine_tuning", "gradual_unfreezing"} <= set(list_components("finetune_strategies"))
    plan = registry("finetune_strategy").get("fine_tuning")(head_lr=1e-2, body_lr=1e-5)
    assert plan.param_groups == [{"match": "head.*", "lr": 1e-2}, {"match": "*", "lr": 1e-5}]


def test_unknown_strategy_suggests_the_closest(tiny_recipe: dict, tmp_path: Path) -> None:
    # Checked first, before the run directory or the recipe are read.
    with pytest.raises(UserError, match=r"unknown finetune_strategy 'feature_extractoin'; did you mean feature_extraction\?"):
        finetune_recipe(tmp_path / "no_run", target_recipe(tiny_recipe, tmp_path), strategy="feature_extractoin")


def test_feature_extraction_trains_only_the_head(source: Path, tiny_recipe: dict, tmp_path: Path) -> None:
    result = finetune(source, target_recipe(tiny_recipe, tmp_path), strategy="feature_extraction")
    before, after = weights(source), weights(result.run_dir)
    for name in ("features.0.weight", "features.3.weight"):
        torch.testing.assert_close(after[name], before[name], rtol=0, atol=0)  # frozen body, copied from the run
    assert not torch.equal(after["head.weight"], before["head.weight"])
    assert result.metrics["test/accuracy"] > 0.5


def test_fine_tuning_puts_body_and_head_in_groups_with_their_rates(source: Path, tiny_recipe: dict, tmp_path: Path) -> None:
    recipe = finetune_recipe(source, target_recipe(tiny_recipe, tmp_path), strategy="fine_tuning", head_lr=1e-3, body_lr=2e-5)
    assert recipe.model.name == "small_cnn" and recipe.callbacks[0].name == "pretrained"
    exp = build_experiment(recipe)
    groups = exp.build_optimizer().param_groups
    lr_of = {name: g["lr"] for g in groups for name in g["names"]}
    assert lr_of["head.weight"] == 1e-3 and lr_of["features.0.weight"] == 2e-5
    assert all(p.requires_grad for p in exp.model.parameters())


def test_gradual_unfreezing_opens_the_body_from_the_top() -> None:
    from deepstrata.models.cnn import small_cnn

    model = small_cnn(widths=[4, 8])
    stages = body_stages(model, 3)
    assert len(stages) == 3
    assert stages[0][0] is model.features[0].weight and stages[-1][-1] is model.features[-2].bias  # last norm layer
    cb = gradual_unfreezing(num_stages=3, epochs_per_stage=1)

    class T:  # the part of the trainer the callback reads
        class task:
            pass

        class state:
            epoch = 0

    T.task.model = model
    cb.setup(T)
    trainable = lambda: [all(p.requires_grad for p in s) for s in cb.stages]  # noqa: E731
    assert trainable() == [False, False, False] and model.head.weight.requires_grad
    T.state.epoch = 1
    cb.on_train_epoch_start(T)
    assert trainable() == [False, False, True]
    T.state.epoch = 5
    cb.on_train_epoch_start(T)
    assert trainable() == [True, True, True]


def test_finetune_refuses_another_architecture(source: Path, tiny_recipe: dict, tmp_path: Path) -> None:
    other = {**target_recipe(tiny_recipe, tmp_path), "model": {"name": "mlp"}}
    with pytest.raises(UserError, match="keeps the run's architecture: set model.name=small_cnn"):
        finetune_recipe(source, other)


def test_cli_finetune_fine_tuning_moves_the_body_little(source: Path, tiny_recipe: dict, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    import json

    import yaml

    from deepstrata.cli.main import main

    recipe_file = tmp_path / "target.yaml"
    recipe_file.write_text(yaml.safe_dump(target_recipe(tiny_recipe, tmp_path)))
    code = main(["finetune", str(source), str(recipe_file), "--strategy", "fine_tuning", "--body-lr", "1e-5", "--json"])
    assert code == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    before, after = weights(source), weights(Path(result["run_dir"]))
    w0, w1 = before["features.3.weight"], after["features.3.weight"]
    assert not torch.equal(w0, w1) and (w1 - w0).norm() < 0.05 * w0.norm()  # started from the run, moved little
    assert main(["finetune", str(tmp_path / "nowhere"), str(recipe_file)]) == 2
