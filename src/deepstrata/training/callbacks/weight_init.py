"""Weight initialisation as a recipe option: re-initialise the model by scheme name before step 1.

Problem: a model factory's default initialisation may not suit the activation a recipe picks
(N(0, 0.02) in a 50-layer ReLU network makes the signal vanish).
Idea: name the scheme in the recipe (`callbacks: [{name: weight_init, scheme: he}]`); it runs
once in `setup`, before training and before a resumed checkpoint overwrites the weights.
See `nn/init.py` for the schemes and their papers.
"""

from __future__ import annotations

from typing import Any

from deepstrata.nn.init import Nonlinearity, Scheme, init_weights
from deepstrata.registry import register_callback
from deepstrata.training.callbacks.base import Callback


class WeightInit(Callback):
    def __init__(self, *, scheme: Scheme, nonlinearity: Nonlinearity, std: float, seed: int):
        self.scheme, self.nonlinearity, self.std, self.seed = scheme, nonlinearity, std, seed

    def setup(self, trainer: Any) -> None:
        init_weights(trainer.task.model, self.scheme, nonlinearity=self.nonlinearity, std=self.std, seed=self.seed)


@register_callback("weight_init")
def weight_init(*, scheme: Scheme = "he", nonlinearity: Nonlinearity = "relu", std: float = 0.02, seed: int = 0) -> WeightInit:
    """Re-initialise Linear/Conv weights by name (xavier, he/kaiming, orthogonal, lecun) before training."""
    return WeightInit(scheme=scheme, nonlinearity=nonlinearity, std=std, seed=seed)
