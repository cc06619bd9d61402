"""One real tiny run, trained once per test session and copied by the tests that damage it."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from tests.conftest import TINY_RECIPE


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished TINY_RECIPE run (one epoch). Read-only: copy it (`run_helpers.copy_run`) before changing it."""
    from deepstrata import api

    out = tmp_path_factory.mktemp("trained")
    recipe = {**copy.deepcopy(TINY_RECIPE), "output_dir": str(out / "runs")}
    return api.train(recipe, ["trainer.max_epochs=1"]).run_dir
