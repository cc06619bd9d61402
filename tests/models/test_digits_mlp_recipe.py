"""recipes/digits_mlp.yaml, short: the MLP of models/mlp.py on the 8x8 digits."""

from __future__ import annotations

import pytest

from tests.conftest import REPO


@pytest.mark.e2e
def test_digits_mlp_recipe_short(tmp_path) -> None:
    from deepstrata.api import train

    result = train(
        REPO / "recipes" / "digits_mlp.yaml", ["trainer.max_epochs=8", "trainer.progress=off", f"output_dir={tmp_path}"]
    )
    assert result.metrics["test/accuracy"] >= 0.95
