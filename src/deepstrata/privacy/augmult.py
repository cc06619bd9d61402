"""Augmentation multiplicity for DP-SGD: K augmented copies of every example, one clipped gradient.

Problem: data augmentation helps a DP model as much as any other, but each augmented copy put in
the batch as an example of its own would be a second, separately clipped gradient of the same
person: the sensitivity of a step doubles with two copies, and the accountant, which counts one
gradient per sampled example, would understate epsilon.
Idea (De et al. 2022, "Unlocking High-Accuracy Differentially Private Image Classification
through Scale", section 3.1): draw the recipe's augmentation K times for every example of the
Poisson batch, take the K copies' per-sample gradients and *average* them before clipping. Each
example still contributes one gradient of norm at most C, so the mechanism, and with it the
accounting, is that of plain DP-SGD at the same q, sigma and steps; the average over copies is a
less noisy estimate of the example's expected gradient under augmentation, at K times the cost
of a step. The loader puts the copies of example i in rows i*K .. i*K + K - 1
(privacy/poisson.py); `AugmultDPOptimizer` folds them back before Opacus clips.
"""

from __future__ import annotations

import torch
from opacus.optimizers import DPOptimizer
from opacus.optimizers.optimizer import _check_processed_flag


def average_copies(grad_sample: torch.Tensor, multiplicity: int) -> torch.Tensor:
    """(B * K, *shape) per-copy gradients, copies of an example adjacent -> (B, *shape) their means."""
    if grad_sample.shape[0] % multiplicity:
        raise ValueError(f"augmult: {grad_sample.shape[0]} per-sample gradients are not whole groups of {multiplicity} copies")
    return grad_sample.reshape(-1, multiplicity, *grad_sample.shape[1:]).mean(dim=1)  # (B, *shape)


class AugmultDPOptimizer(DPOptimizer):
    """Opacus' DPOptimizer whose per-sample gradients are first averaged over each example's K copies.

    `expected_batch_size` counts examples (the Poisson batch), not copies; clipping, noise and
    scaling are Opacus' own, applied to the B averaged gradients.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        *,
        multiplicity: int,
        noise_multiplier: float,
        max_grad_norm: float,
        expected_batch_size: int,
        loss_reduction: str = "mean",
    ):
        super().__init__(
            optimizer, noise_multiplier=noise_multiplier, max_grad_norm=max_grad_norm,
            expected_batch_size=expected_batch_size, loss_reduction=loss_reduction,
        )
        self.multiplicity = multiplicity

    def clip_and_accumulate(self) -> None:
        for p in self.params:
            _check_processed_flag(p.grad_sample)  # Opacus' guard against reusing a step's gradients
            p.grad_sample = average_copies(self._get_flat_grad_sample(p), self.multiplicity)
        super().clip_and_accumulate()
