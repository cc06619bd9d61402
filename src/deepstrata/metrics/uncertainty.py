"""Predictive entropy and mutual information: how unsure a sampled model is, and why.

Problem: one softmax gives one number of doubt, but an input can be uncertain because its
class is ambiguous (aleatoric: every plausible model says 50/50) or because the models disagree
(epistemic: each is sure, of different classes); only the second falls with more data and flags
inputs unlike the training set.
Idea: given S predictive samples p_s(y | x) (MC-dropout passes, ensemble members, posterior
draws), the total uncertainty is the entropy of the mean, H[p̄] with p̄ = (1/S) sum_s p_s; the
aleatoric part is the mean entropy E_s H[p_s]; their difference is the mutual information
I(y; w | x) = H[p̄] - E_s H[p_s] >= 0 between the label and the model, the BALD score
(Houlsby et al. 2011, "Bayesian Active Learning for Classification and Preference Learning";
Gal, Islam & Ghahramani 2017; Depeweg et al. 2018 for the decomposition).

All quantities are in nats; probabilities of 0 contribute 0 (0 log 0 = 0).
"""

from __future__ import annotations

import torch

from deepstrata.errors import UserError


def _check_samples(probs: torch.Tensor, where: str) -> torch.Tensor:
    if not isinstance(probs, torch.Tensor) or probs.dim() != 3 or probs.numel() == 0:
        got = tuple(probs.shape) if isinstance(probs, torch.Tensor) else type(probs).__name__
        raise UserError(f"{where} expects sampled probabilities of shape (S, N, K), got {got}")
    return probs


def entropy(probs: torch.Tensor) -> torch.Tensor:
    """H[p] = -sum_k p_k log p_k over the last dimension: (..., K) -> (...)."""
    if not isinstance(probs, torch.Tensor) or probs.dim() < 1:
        raise UserError(f"entropy expects probabilities of shape (..., K), got {probs!r:.60}")
    return -torch.special.xlogy(probs, probs).sum(-1)


def predictive_entropy(probs: torch.Tensor) -> torch.Tensor:
    """Total uncertainty H[(1/S) sum_s p_s]: (S, N, K) -> (N,)."""
    return entropy(_check_samples(probs, "predictive_entropy").mean(0))


def expected_entropy(probs: torch.Tensor) -> torch.Tensor:
    """Aleatoric uncertainty (1/S) sum_s H[p_s]: (S, N, K) -> (N,)."""
    return entropy(_check_samples(probs, "expected_entropy")).mean(0)


def mutual_information(probs: torch.Tensor) -> torch.Tensor:
    """Epistemic uncertainty (BALD) H[p̄] - E_s H[p_s]: (S, N, K) -> (N,), clamped at 0 against round-off."""
    return (predictive_entropy(probs) - expected_entropy(probs)).clamp_min(0.0)
