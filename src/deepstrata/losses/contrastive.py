"""Contrastive losses InfoNCE and NT-Xent: learn representations by telling pairs apart.

Problem: without labels, an encoder still needs a signal saying which inputs should map close
together. Idea: for each anchor, classify its positive (another view of the same input) among
the other inputs in the batch with a temperature-scaled softmax over cosine similarities;
minimising this cross-entropy maximises a lower bound on the views' mutual information
(van den Oord et al. 2018, "Representation Learning with Contrastive Predictive Coding";
NT-Xent: Chen et al. 2020, SimCLR).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from deepstrata.losses._checks import check_same_shape
from deepstrata.registry import register_loss


def _check(name: str, z1: torch.Tensor, z2: torch.Tensor) -> None:
    if z1.dim() != 2:
        raise ValueError(f"{name} expects embeddings (N, D), got shape {tuple(z1.shape)}")
    check_same_shape(name, z1, z2, ("first view", "second view"))


class InfoNCE(nn.Module):
    """InfoNCE for paired embeddings z1, z2 (N, D): row i of z2 is z1[i]'s positive, others negatives.

    Fits self-supervised and cross-modal (CLIP-style, `symmetric=True`) pre-training. The
    gradient is softmax-weighted: hard negatives (most similar) receive the largest push,
    sharpened by a small temperature; too small a temperature makes it spiky and unstable.
    Larger batches give more negatives and a tighter bound.
    """

    def __init__(self, *, temperature: float = 0.1, symmetric: bool = False):
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"info_nce: temperature must be positive, got {temperature}")
        self.temperature = temperature
        self.symmetric = symmetric

    def forward(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        _check("info_nce", z1, z2)
        logits = F.normalize(z1, dim=1) @ F.normalize(z2, dim=1).T / self.temperature  # (N, N) cosine / tau
        labels = torch.arange(len(z1), device=z1.device)
        loss = F.cross_entropy(logits, labels)
        return (loss + F.cross_entropy(logits.T, labels)) / 2 if self.symmetric else loss


class NTXent(nn.Module):
    """SimCLR's NT-Xent on two views z1, z2 (N, D): each of the 2N embeddings finds its partner
    among the other 2N - 1 (self-similarity excluded).

    Fits SimCLR-style pre-training; same gradient behaviour as InfoNCE, with both views acting
    as anchors and as negatives, so 2N - 2 negatives per anchor.
    """

    def __init__(self, *, temperature: float = 0.5):
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"nt_xent: temperature must be positive, got {temperature}")
        self.temperature = temperature

    def forward(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        _check("nt_xent", z1, z2)
        n = len(z1)
        z = F.normalize(torch.cat([z1, z2]), dim=1)  # (2N, D)
        sim = z @ z.T / self.temperature  # (2N, 2N)
        sim = sim.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))
        partner = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
        return F.cross_entropy(sim, partner)


@register_loss("info_nce")
def info_nce(*, temperature: float = 0.1, symmetric: bool = False) -> InfoNCE:
    """InfoNCE contrastive loss on paired embeddings (z1[i] <-> z2[i]); in-batch negatives."""
    return InfoNCE(temperature=temperature, symmetric=symmetric)


@register_loss("nt_xent")
def nt_xent(*, temperature: float = 0.5) -> NTXent:
    """SimCLR's NT-Xent: normalised temperature-scaled cross-entropy over 2N views."""
    return NTXent(temperature=temperature)
