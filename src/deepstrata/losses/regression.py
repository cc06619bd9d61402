"""Distance losses for regression: MSE, MAE, Huber.

Problem: a regression model needs a loss on how far the prediction is from the target.
Idea: MSE (Gaussian noise model) punishes large errors most and has a gradient proportional
to the error; MAE (Laplace) is robust to outliers but has a constant-size gradient; Huber is
quadratic near zero and linear beyond `delta`, taking the best of both.
"""

from __future__ import annotations

from torch import nn

from deepstrata.registry import register_loss


@register_loss("mse")
def mse() -> nn.MSELoss:
    """Mean squared error for regression; gradient proportional to the error."""
    return nn.MSELoss()


@register_loss("mae")
def mae() -> nn.L1Loss:
    """Mean absolute error for regression; robust to outliers, constant gradient size."""
    return nn.L1Loss()


@register_loss("huber")
def huber(*, delta: float = 1.0) -> nn.HuberLoss:
    """Huber loss: quadratic for errors below delta, linear beyond; robust and smooth."""
    return nn.HuberLoss(delta=delta)
