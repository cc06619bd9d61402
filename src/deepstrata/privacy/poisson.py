"""Poisson sampling: every example joins each batch on its own coin flip, so batch sizes vary.

Problem: the privacy accounting of DP-SGD (the moments accountant of Abadi et al. 2016 and the
RDP and PRV accountants after it) assumes *subsampling*: at every step each example is in the
batch independently with probability q. Shuffling and cutting fixed-size batches is a
different mechanism, and the epsilon the accountants give does not hold for it.
Idea: at step t of epoch e draw one uniform number per training example from a generator
seeded by (recipe seed, e, t) and keep the examples below q = expected batch / n. An epoch is
n // expected batch such steps, as in Opacus. Because each step's draw depends only on
(seed, e, t), a run resumed mid-epoch draws exactly the batches it had not yet drawn, with no
sampler state in the checkpoint. The draws come from torch's seeded generator: reproducible,
as research needs, but not the cryptographically secure randomness a production guarantee
asks for (Opacus' `secure_mode`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import default_collate

from deepstrata.data.tensor_loader import TensorLoader, index_seed
from deepstrata.errors import UserError
from deepstrata.transforms.pipeline import seed_from

# Largest accepted chance that some step of the run draws an empty batch (see `empty_batch_chance`).
MAX_EMPTY_CHANCE = 1e-3


class PoissonSampler:
    """The index sets of an epoch's Poisson-sampled batches, from step `start` on."""

    def __init__(self, n: int, sample_rate: float, *, seed: int, steps: int, batch_size: int):
        self.n, self.sample_rate, self.seed, self.steps, self.batch_size = n, sample_rate, seed, steps, batch_size
        self.epoch, self.start = 0, 0

    def set_position(self, epoch: int, start: int) -> None:
        """The trainer's resume call: `start` counts samples (steps x expected batch), as for the shuffling sampler."""
        self.epoch, self.start = epoch, start // self.batch_size

    def set_epoch(self, epoch: int) -> None:
        self.set_position(epoch, 0)

    def draw(self, epoch: int, step: int) -> torch.Tensor:
        """The indices in batch `step` of `epoch` (sorted; empty with probability (1 - q)^n)."""
        generator = torch.Generator().manual_seed(seed_from(self.seed, f"poisson/{epoch}/{step}".encode()))
        return torch.nonzero(torch.rand(self.n, generator=generator) < self.sample_rate).squeeze(1)

    def __len__(self) -> int:
        return self.steps

    def __iter__(self) -> Iterator[torch.Tensor]:
        for step in range(self.start, self.steps):
            yield self.draw(self.epoch, step)


def empty_batch_chance(n: int, sample_rate: float, steps: int) -> float:
    """The chance that at least one of `steps` Poisson draws is empty: 1 - (1 - (1 - q)^n)^steps."""
    p_empty = math.exp(n * math.log1p(-sample_rate)) if sample_rate < 1 else 0.0
    return -math.expm1(steps * math.log1p(-p_empty)) if p_empty < 1 else 1.0


class PoissonLoader:
    """Poisson-sampled batches of the split a DataLoader or TensorLoader reads, with its augmentation.

    `batch_size` is the *expected* batch size (the recipe's `data.batch_size`). What the trainer
    reads from a loader is here: `len` (steps per epoch), `batch_size`, `sampler` (resumable),
    `dataset`, `generator` (None). With `multiplicity` K > 1 (augmentation multiplicity,
    privacy/augmult.py) a batch of B drawn examples holds B * K rows: each example K times in a
    row, each copy under its own draw of the augmentation.
    """

    generator = None

    def __init__(self, loader: Any, *, seed: int, total_steps: int | None = None, multiplicity: int = 1):
        self.loader, self.dataset, self.multiplicity = loader, loader.dataset, multiplicity
        n, batch = len(loader.dataset), int(loader.batch_size)
        if batch > n:
            raise UserError(f"data.batch_size={batch} is the expected Poisson batch and must not exceed the {n} training examples")
        self.batch_size, self.sample_rate = batch, batch / n
        steps = max(1, n // batch)
        self.sampler = PoissonSampler(n, self.sample_rate, seed=seed, steps=steps, batch_size=batch)
        chance = empty_batch_chance(n, self.sample_rate, total_steps or steps)
        if chance > MAX_EMPTY_CHANCE:
            raise UserError(
                f"Poisson sampling at data.batch_size={batch} of {n} examples would draw an empty batch somewhere in "
                f"the run with probability {chance:.2g}; raise data.batch_size (its expected size) to at least "
                f"{minimum_batch(n, total_steps or steps)}"
            )
        self.collate_fn = loader.collate_fn

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self) -> Iterator[Any]:
        for index in self.sampler:
            yield self.fetch(index)

    def fetch(self, index: torch.Tensor) -> Any:
        """The batch of the split's examples at positions `index`, augmented as the loader would."""
        loader = self.loader
        if self.multiplicity > 1:
            index = index.repeat_interleave(self.multiplicity)  # (B * K,): copies of an example adjacent
        if isinstance(loader, TensorLoader):
            rows = loader.rows[index] if loader.rows is not None else index
            batch = [t.index_select(0, rows.to(loader.device)) for t in loader.tensors]
            if loader.collate_fn is None:
                return batch
            x, y = batch
            return loader.collate_fn.apply_seeded(x, y, index_seed(loader.collate_fn.seed, rows.numpy()))
        collate = loader.collate_fn or default_collate
        return collate([self.dataset[i] for i in index.tolist()])


def minimum_batch(n: int, steps: int) -> int:
    """The smallest expected batch whose run of `steps` draws has an empty one with chance <= MAX_EMPTY_CHANCE."""
    batch = 1
    while batch < n and empty_batch_chance(n, batch / n, steps) > MAX_EMPTY_CHANCE:
        batch += 1
    return batch
