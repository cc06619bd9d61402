"""benchmarks/_speedrun_plain.py builds the speedrun recipes' networks layer for layer as the registry does.

The speedrun benchmark's "toolkit / plain script" ratio means something only if both sides
train the same network; the benchmark checks the parameter counts, this checks every shape.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import yaml

from deepstrata.config import load_recipe
from deepstrata.data.base import build_data
from deepstrata.experiment import build_model

REPO = Path(__file__).resolve().parents[1]


def _plain():
    spec = importlib.util.spec_from_file_location("speedrun_plain", REPO / "benchmarks" / "_speedrun_plain.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name, input_shape", [("digits_speedrun", (1, 8, 8)), ("mnist_speedrun", (1, 28, 28)), ("fashion_speedrun", (1, 28, 28))])
def test_the_plain_network_has_the_recipes_parameter_shapes(name: str, input_shape: tuple[int, ...], monkeypatch: pytest.MonkeyPatch) -> None:
    recipe_path = REPO / "recipes" / f"{name}.yaml"
    plain = _plain().network(yaml.safe_load(recipe_path.read_text())["model"], input_shape[0], input_shape[1])
    recipe = load_recipe(recipe_path)
    data = build_data("digits", seed=0, val_fraction=0.1, test_fraction=0.2)  # only its model defaults are read
    data.input_shape = input_shape
    model, _ = build_model(recipe, data)
    assert [tuple(p.shape) for p in plain.parameters()] == [tuple(p.shape) for p in model.parameters()]
