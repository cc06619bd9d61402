"""Run directories: a recipe name cannot leave output_dir, and leftovers of killed writers trip nothing."""

from __future__ import annotations

import copy
import os
import time
from pathlib import Path

import pytest
import torch
from tests.conftest import TINY_RECIPE
from tests.run.run_helpers import copy_run

from deepstrata import api
from deepstrata.config import validate_recipe
from deepstrata.errors import ConfigError, UserError
from deepstrata.run.run import Run
from deepstrata.run.run_dir import new_run_dir

BAD_NAMES = ["../escape", "a/b", "/abs", "..", ".", ".hidden", "a..b", "", "with space", "semi;colon", "tab\tname", "ü"]
GOOD_NAMES = ["tiny", "digits_cnn", "v1.2-rc_3", "A", "0", "name."]


# ---- finding: a recipe name containing ../ wrote outside output_dir
@pytest.mark.parametrize("name", BAD_NAMES)
def test_a_recipe_name_must_be_one_safe_folder_name(name: str) -> None:
    with pytest.raises(ConfigError) as err:
        validate_recipe({**copy.deepcopy(TINY_RECIPE), "name": name})
    message = str(err.value)
    assert message.startswith("recipe: name: ") and "letters, digits, '.', '_' and '-'" in message and "\n" not in message


@pytest.mark.parametrize("name", GOOD_NAMES)
def test_ordinary_recipe_names_pass(name: str) -> None:
    assert validate_recipe({**copy.deepcopy(TINY_RECIPE), "name": name}).name == name


def test_training_a_recipe_named_dotdot_writes_nothing_outside_output_dir(tmp_path: Path) -> None:
    recipe = {**copy.deepcopy(TINY_RECIPE), "name": "../escape", "output_dir": str(tmp_path / "runs")}
    with pytest.raises(ConfigError, match="recipe: name: "):
        api.train(recipe, ["trainer.max_epochs=1"])
    assert not (tmp_path / "escape").exists() and not (tmp_path / "runs").exists()


@pytest.mark.parametrize("name", ["../x", "/abs", "a/b", "..", ".", "", "a/../../b"])
def test_new_run_dir_refuses_a_name_that_leaves_output_dir(tmp_path: Path, name: str) -> None:
    """Defence in depth: callers that skip the Recipe (tools, tests) cannot escape either."""
    out = tmp_path / "deep" / "runs"
    with pytest.raises(UserError, match="cannot name a run folder"):
        new_run_dir(out, name)
    assert not tmp_path.joinpath("deep").exists()


def test_new_run_dir_makes_a_fresh_folder_for_a_safe_name(tmp_path: Path) -> None:
    first, second = new_run_dir(tmp_path, "tiny"), new_run_dir(tmp_path, "tiny")
    assert first != second and first.parent == second.parent == tmp_path / "tiny"
    assert (first / "checkpoints").is_dir()


# ---- stale temporary files from a killed writer are ignored by readers
def test_stale_temporaries_trip_neither_new_run_dir_nor_run_open(trained_run: Path, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    run = copy_run(trained_run, runs / "tiny" / "20000101-000000")
    long_ago = time.time() - 3600
    leftovers = [
        runs / "tiny" / f".{time.strftime('%Y%m%d-%H%M%S')}.k1ll3d00.tmp",
        run / ".model.safetensors.k1ll3d00.tmp",
        run / ".model.json.k1ll3d00.tmp",
        run / ".config.yaml.k1ll3d00.tmp",
        run / ".run.json.k1ll3d00.tmp",
        run / ".metrics.jsonl.k1ll3d00.tmp",
        run / "checkpoints" / ".last.pt.k1ll3d00.tmp",
    ]
    for path in leftovers:
        path.write_bytes(b"half a file")
        os.utime(path, (long_ago, long_ago))
    fresh = new_run_dir(runs, "tiny")
    assert fresh.is_dir() and fresh.parent == runs / "tiny"
    opened = Run.open(run)
    reference = Run.open(trained_run).model().state_dict()
    assert all(torch.equal(v, reference[k]) for k, v in opened.model().state_dict().items())
    assert opened.recipe.name == "tiny" and opened.records and opened.info["status"] == "finished"
    assert opened.tool_results() == []
