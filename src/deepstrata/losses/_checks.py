"""Shape checks shared by the loss modules: one error message style for every loss."""

from __future__ import annotations

import torch


def check_logits_labels(loss: str, logits: torch.Tensor, target: torch.Tensor) -> None:
    """logits (N, K) with integer labels (N,) in 0..K-1; raise ValueError naming both shapes."""
    if logits.dim() != 2:
        raise ValueError(f"{loss} expects logits (N, K), got shape {tuple(logits.shape)}")
    if target.shape != logits.shape[:1]:
        raise ValueError(f"{loss}: labels shape {tuple(target.shape)} does not match logits {tuple(logits.shape)}; expected ({logits.shape[0]},)")


def check_same_shape(loss: str, a: torch.Tensor, b: torch.Tensor, names: tuple[str, str]) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{loss}: {names[0]} shape {tuple(a.shape)} differs from {names[1]} shape {tuple(b.shape)}")
