"""The one small interface every generative model shares: an objective and a sampler.

Problem: a VAE, a GAN, a diffusion model, a flow and an autoregressive model train on very
different losses, and a training loop, a sampling command or a report that knows each of them
grows a branch per family.
Idea: every generative model defines `objective(x, y) -> {"loss": scalar, <term>: scalar, ...}`
(the quantity to minimise, per example, plus the parts worth logging: reconstruction and KL,
both players' losses, bits/dim) and `sample(n, y=..., steps=..., guidance=...)`; the task, the
`strata sample` command and the report only use these two methods.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from deepstrata.errors import UserError


class GenerativeModel(nn.Module):
    """Base class: `objective` for training, `sample` for generation.

    data_shape: the shape of one example, e.g. (1, 28, 28) or (2,).
    num_classes: > 0 for a class-conditional model (then `y` is required by `objective`).
    """

    data_shape: tuple[int, ...]
    num_classes: int = 0
    # Keyword arguments of `sample` this model uses beyond n, y and generator ("steps", "guidance").
    sample_options: frozenset[str] = frozenset()
    # The unit of the objective's terms when they are negative log-likelihoods ("nats"), else None.
    objective_units: str | None = None

    @property
    def conditional(self) -> bool:
        return self.num_classes > 0

    @property
    def num_dims(self) -> int:
        return math.prod(self.data_shape)

    def objective(self, x: torch.Tensor, y: torch.Tensor | None = None) -> dict[str, torch.Tensor]:  # pragma: no cover
        raise NotImplementedError

    def sample(
        self,
        n: int,
        *,
        y: torch.Tensor | None = None,
        steps: int | None = None,
        guidance: float | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:  # pragma: no cover
        """(n, *data_shape) samples on the data's scale."""
        raise NotImplementedError

    # ------------------------------------------------------------ shared checks
    def check_data(self, layer: str, x: torch.Tensor) -> None:
        """Shape error naming the layer and both shapes when x is not (N, *data_shape)."""
        if tuple(x.shape[1:]) != tuple(self.data_shape) or x.dim() != len(self.data_shape) + 1:
            want = "(N, " + ", ".join(str(s) for s in self.data_shape) + ")"
            raise ValueError(f"{layer} expected {want} input, got {tuple(x.shape)}")

    def check_labels(self, layer: str, y: torch.Tensor | None, n: int, *, required: bool = True) -> torch.Tensor | None:
        """Labels for a conditional model: (n,) int64 in 0..num_classes-1; None otherwise.

        required=False lets a conditional model's `forward` run without labels (the "no label"
        input of classifier-free guidance); sampling and training always need them.
        """
        if not self.conditional:
            return None
        if y is None and not required:
            return None
        if y is None:
            raise UserError(f"{layer} is class-conditional ({self.num_classes} classes) and needs labels y; pass y (or --class)")
        y = torch.as_tensor(y, dtype=torch.long)
        if y.dim() == 0:
            y = y.expand(n)
        if y.shape != (n,):
            raise ValueError(f"{layer} expected labels of shape ({n},), got {tuple(y.shape)}")
        if y.numel() and (int(y.min()) < 0 or int(y.max()) >= self.num_classes):
            raise UserError(f"{layer}: class {int(y.max())} is outside 0..{self.num_classes - 1}")
        return y


def class_labels(n: int, num_classes: int) -> torch.Tensor | None:
    """0, 1, ..., K-1, 0, 1, ... (n labels) for a conditional model; None otherwise."""
    return torch.arange(n) % num_classes if num_classes > 0 else None


def bits_per_dim(nll_nats: torch.Tensor, num_dims: int) -> torch.Tensor:
    """Negative log-likelihood per example in nats -> bits per dimension, as papers report it."""
    return nll_nats / (num_dims * math.log(2.0))


def dynamic_binarize(x: torch.Tensor) -> torch.Tensor:
    """Grey levels in [0, 1] read as Bernoulli probabilities and sampled; binary input unchanged.

    Dynamic binarisation (a fresh sample each time an image is seen) is the standard protocol
    for MNIST likelihoods (Salakhutdinov & Murray 2008); a test set that was binarised once
    is already binary and passes through untouched.
    """
    if bool(((x == 0) | (x == 1)).all()):
        return x
    return torch.bernoulli(x.clamp(0.0, 1.0))
