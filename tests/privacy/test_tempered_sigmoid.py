"""Tempered sigmoids (Papernot et al. 2021): phi(x) = s * sigmoid(T x) - o, tanh as s = T = 2, o = 1,
chosen with its parameters from a recipe for LeNet-5 and the MLP, saved and reopened like any run."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from deepstrata import api
from deepstrata.errors import ConfigError
from deepstrata.nn.activations import TemperedSigmoid
from deepstrata.registry import create

REPO = Path(__file__).resolve().parents[2]
MLP_RECIPE = REPO / "recipes" / "engine_mlp_digits.yaml"
SPEC = {"name": "tempered_sigmoid", "scale": 1.5, "temperature": 3.0, "offset": 0.5}


def test_tanh_is_the_tempered_sigmoid_with_scale_2_temperature_2_offset_1() -> None:
    x = torch.linspace(-6, 6, 2001, dtype=torch.float64)
    torch.testing.assert_close(TemperedSigmoid(scale=2.0, temperature=2.0, offset=1.0)(x), torch.tanh(x), rtol=0, atol=1e-12)
    assert not torch.allclose(TemperedSigmoid(scale=2.0, temperature=1.0, offset=1.0)(x), torch.tanh(x))


def test_the_tempered_sigmoid_is_its_formula_with_range_slope_and_centre_set_by_its_parameters() -> None:
    s, t, o = 1.5, 3.0, 0.5
    phi = TemperedSigmoid(scale=s, temperature=t, offset=o)
    for v in (-2.0, -0.3, 0.0, 0.7, 4.0):
        assert phi(torch.tensor(v, dtype=torch.float64)).item() == pytest.approx(s / (1 + math.exp(-t * v)) - o, rel=1e-12)
    x = torch.tensor([-50.0, 0.0, 50.0], dtype=torch.float64, requires_grad=True)
    y = phi(x)
    assert y[0].item() == pytest.approx(-o) and y[2].item() == pytest.approx(s - o)  # the range (-o, s - o)
    y.sum().backward()
    assert x.grad[1].item() == pytest.approx(s * t / 4)  # the slope at 0


def test_lenet5_and_the_mlp_take_a_tempered_sigmoid_with_its_parameters_from_their_arguments() -> None:
    lenet = create("model", "lenet5", activation=SPEC)
    mlp = create("model", "mlp", in_features=64, num_classes=10, hidden=[32, 16], activation=SPEC)
    for model, count in ((lenet, 4), (mlp, 2)):  # LeNet: after 2 convolutions and 2 FC layers
        found = [m for m in model.modules() if isinstance(m, TemperedSigmoid)]
        assert len(found) == count and all((m.scale, m.temperature, m.offset) == (1.5, 3.0, 0.5) for m in found)
    assert lenet(torch.randn(2, 1, 28, 28)).shape == (2, 10)
    # Left-out parameters are tanh's; a plain name still means what it did.
    default = create("model", "lenet5", activation={"name": "tempered_sigmoid"})
    x = torch.randn(3, 1, 28, 28)
    tanh = create("model", "lenet5", activation="tanh")
    tanh.load_state_dict(default.state_dict())
    torch.testing.assert_close(default(x), tanh(x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("activation", "message"),
    [
        ({"name": "tempered_sigmoid", "temprature": 2.0}, "temprature"),
        ({"name": "tempered_sigmoid", "scale": -1.0}, "greater than 0"),
        ({"name": "tempered_sigmoid", "temperature": 0.0}, "greater than 0"),
        ("tempered", "tempered"),
    ],
)
def test_a_bad_tempered_sigmoid_fails_when_the_model_is_built(activation: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        create("model", "lenet5", activation=activation)


@pytest.mark.e2e
def test_a_recipe_trains_with_a_tempered_sigmoid_and_its_run_reopens_with_it(tmp_path: Path) -> None:
    from deepstrata.run.run import Run

    result = api.train(str(MLP_RECIPE), [
        f"output_dir={tmp_path}", "trainer.progress=off", "trainer.max_epochs=1",
        "model.activation={name: tempered_sigmoid, scale: 1.5, temperature: 3.0, offset: 0.5}",
    ])
    spec = json.loads((result.run_dir / "model.json").read_text())
    assert spec["kwargs"]["activation"] == SPEC
    run = Run.open(result.run_dir)
    assert [m.temperature for m in run.model().modules() if isinstance(m, TemperedSigmoid)] == [3.0]
    assert run.evaluate("test")["test/accuracy"] == pytest.approx(result.metrics["test/accuracy"], abs=1e-6)
