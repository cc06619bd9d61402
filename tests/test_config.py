"""Recipes: unknown keys name their path and the closest valid key; overrides are type-checked."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from deepstrata.config import Recipe, apply_override, load_recipe, task_mapping
from deepstrata.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


def test_every_shipped_recipe_validates() -> None:
    for path in sorted((REPO / "recipes").glob("*.yaml")):
        assert isinstance(load_recipe(path), Recipe), path


def test_misspelled_trainer_key_in_file(tmp_path: Path, tiny_recipe: dict) -> None:
    tiny_recipe["trainer"]["max_epoch"] = 3
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(tiny_recipe))
    with pytest.raises(ConfigError, match=r"trainer\.max_epoch: unknown key; did you mean max_epochs\?"):
        load_recipe(path)


def test_misspelled_key_in_override(tiny_recipe: dict) -> None:
    with pytest.raises(ConfigError, match=r"trainer\.max_epoch: unknown key; did you mean max_epochs\?"):
        load_recipe(tiny_recipe, ["trainer.max_epoch=3"])


def test_misspelled_component_argument_suggests_from_signature(tiny_recipe: dict) -> None:
    with pytest.raises(ConfigError, match=r"model\.widht: unknown key; did you mean widths\?"):
        load_recipe(tiny_recipe, ["model.widht=[4]"])


def test_misspelled_top_level_key(tiny_recipe: dict) -> None:
    tiny_recipe["optimiser"] = {"name": "adam"}
    with pytest.raises(ConfigError, match=r"optimiser: unknown key; did you mean optimizer\?"):
        load_recipe(tiny_recipe)


def test_override_is_type_checked(tiny_recipe: dict) -> None:
    with pytest.raises(ConfigError, match=r"trainer\.max_epochs: Input should be a valid integer"):
        load_recipe(tiny_recipe, ["trainer.max_epochs=many"])
    with pytest.raises(ConfigError, match=r"optimizer\.lr: Input should be a valid number"):
        load_recipe(tiny_recipe, ["optimizer.lr=fast"])


def test_override_sets_values_with_types(tiny_recipe: dict) -> None:
    recipe = load_recipe(tiny_recipe, ["trainer.max_epochs=7", "optimizer.lr=3e-4", "model.widths=[4, 8]", "metrics=[f1_macro]"])
    assert recipe.trainer.max_epochs == 7
    assert recipe.optimizer.kwargs["lr"] == "3e-4" or float(recipe.optimizer.kwargs["lr"]) == 3e-4
    assert recipe.model.kwargs["widths"] == [4, 8]
    assert recipe.metrics[0].name == "f1_macro"


def test_override_switches_components_by_name(tiny_recipe: dict) -> None:
    recipe = load_recipe(tiny_recipe, ["model.name=mlp", "~model.widths", "~model.dropout"])
    assert recipe.model.name == "mlp" and recipe.model.kwargs == {}
    recipe = load_recipe(tiny_recipe, ["model={name: mlp, hidden: [32]}"])
    assert recipe.model.kwargs == {"hidden": [32]}
    with pytest.raises(ConfigError, match=r"unknown model 'mpl'; did you mean mlp\?"):
        load_recipe(tiny_recipe, ["model.name=mpl"])


def test_override_syntax_errors() -> None:
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        apply_override({}, "trainer.max_epochs")
    with pytest.raises(ConfigError, match="there is no 'trainer.nope' to remove"):
        apply_override({"trainer": {}}, "~trainer.nope")
    with pytest.raises(ConfigError, match="expected a list index"):
        apply_override({"metrics": []}, "metrics.3.name=x")


def test_missing_recipe_file() -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_recipe("recipes/nope.yaml")


def test_invalid_yaml(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("data: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_recipe(path)


def test_resolved_recipe_round_trips_through_yaml(tiny_recipe: dict) -> None:
    recipe = load_recipe(tiny_recipe)
    again = load_recipe(yaml.safe_load(recipe.to_yaml()))
    assert again == recipe


def test_misspelled_strategy_and_precision_suggest_the_closest(tiny_recipe: dict) -> None:
    with pytest.raises(ConfigError, match=r"trainer\.strategy: unknown strategy 'dpp'; did you mean ddp\? \(choices: auto, ddp, dp_sgd, fedavg, fsdp, single"):
        load_recipe(tiny_recipe, ["trainer.strategy=dpp"])
    with pytest.raises(ConfigError, match=r"trainer\.precision: unknown precision 'bf61'; did you mean bf16\?"):
        load_recipe(tiny_recipe, ["trainer.precision=bf61"])
    recipe = load_recipe(tiny_recipe, ["trainer.strategy=single", "trainer.precision=bf16"])
    assert (recipe.trainer.strategy, recipe.trainer.precision) == ("single", "bf16")


def test_task_name_is_short_for_a_spec(tiny_recipe: dict) -> None:
    recipe = load_recipe(tiny_recipe, ["task=classification"])
    assert recipe.task.name == "classification" and recipe.task.kwargs == {}
    assert load_recipe(yaml.safe_load(recipe.to_yaml())).task == recipe.task
    with pytest.raises(ConfigError, match=r"task\.name: unknown task 'clasification'; did you mean classification\?"):
        load_recipe(tiny_recipe, ["task=clasification"])


def test_task_arguments_are_checked_against_the_factory(tiny_recipe: dict) -> None:
    with pytest.raises(ConfigError, match=r"task\.mask_rat: unknown key; did you mean mask_rate\? \(valid keys: mask_rate, whole_word\)"):
        load_recipe(tiny_recipe, ["task={name: masked_lm, mask_rat: 0.4}"])
    with pytest.raises(ConfigError, match=r"task\.mask_rate: Input should be a valid number"):
        load_recipe(tiny_recipe, ["task={name: masked_lm, mask_rate: lots}"])
    # What the framework hands a task (model, loss, metrics, data) is not a recipe key.
    with pytest.raises(ConfigError, match=r"task\.data: unknown key"):
        load_recipe(tiny_recipe, ["task={name: masked_lm, data: x}"])
    with pytest.raises(ConfigError, match=r"task\.mask_rate: unknown key \('task' takes no arguments; remove the key\)"):
        load_recipe(tiny_recipe, ["task={name: classification, mask_rate: 0.4}"])
    recipe = load_recipe(tiny_recipe, ["task={name: masked_lm, mask_rate: 0.4, whole_word: true}"])
    assert recipe.task.kwargs == {"mask_rate": 0.4, "whole_word": True}


def test_old_runs_retired_task_name_migrates(tmp_path: Path, tiny_recipe: dict) -> None:
    """A run written before `task:` took arguments saved `task: masked_lm_whole_word` in its config.yaml."""
    old = tmp_path / "config.yaml"
    old.write_text(yaml.safe_dump({**tiny_recipe, "task": "masked_lm_whole_word"}))
    recipe = load_recipe(old)
    assert recipe.task.name == "masked_lm" and recipe.task.kwargs == {"mask_rate": 0.4, "whole_word": True}
    # Readers of a run's raw config.yaml / model.json `task` get the same answer without validating a recipe.
    assert task_mapping("masked_lm_whole_word") == {"name": "masked_lm", "mask_rate": 0.4, "whole_word": True}
    assert task_mapping("classification") == {"name": "classification"}
    assert task_mapping({"name": "masked_lm", "mask_rate": 0.3}) == {"name": "masked_lm", "mask_rate": 0.3}
