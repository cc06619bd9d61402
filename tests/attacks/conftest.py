"""A tiny classifier trained on the 8x8 digits in about a second, shared by the attack tests."""

from __future__ import annotations

import pytest
import torch
from torch import nn


def digits() -> tuple[torch.Tensor, torch.Tensor]:
    """All 1,797 sklearn digits as (N, 1, 8, 8) inputs in [0, 1] and (N,) labels."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = torch.tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0
    return x, torch.tensor(bunch.target, dtype=torch.int64)


def small_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8 * 8, 10))


@pytest.fixture(scope="session")
def trained() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """(model in eval mode, held-out x, y): trained on the first 1,500 digits (93% on the other 297)."""
    return train_small_model()


def train_small_model() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    x, y = digits()
    model = small_model()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    generator = torch.Generator().manual_seed(0)
    for _ in range(150):
        index = torch.randint(0, 1500, (128,), generator=generator)
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x[index]), y[index]).backward()
        optimizer.step()
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model, x[1500:], y[1500:]
