"""Batches cut straight from tensors in memory: no per-sample Python work, no worker processes.

Problem: a DataLoader over a `TensorDataset` builds every batch one example at a time
(`dataset[i]` for each index, through a `Subset` for a split, then `default_collate` stacks
them). That is a fixed Python cost per sample, which dominates once the model step takes a
few milliseconds; worker processes only add start-up time and copies for data that is
already in memory.
Idea: when a split is a `TensorDataset` (or a `Subset` of one), keep its tensors, on the
training device when they fit, and cut each batch with one `index_select` over the same
sampler order the DataLoader path uses (so resume and torchrun sharding work unchanged).
The recipe's augmentation runs on the whole batch where the batch lives (kornia, the same
transforms), seeded from the recipe's seed and the batch's sample indices: a batch is
augmented the same way after a resume, and no batch has to be copied back to the host to be
hashed. Without augmentation the batches equal the DataLoader's exactly; with it, the draws
differ from the DataLoader path's (which seeds from the batch's bytes) but follow the same
distribution.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Subset, TensorDataset

from deepstrata.transforms.pipeline import seed_from

# On a GPU the training split is copied to device memory once when it takes at most this
# share of the free memory; otherwise batches are cut on the host and moved one at a time.
DEVICE_SHARE = 0.25


def tensor_source(dataset: Dataset | None) -> tuple[tuple[torch.Tensor, ...], torch.Tensor | None] | None:
    """(the tensors, the split's row indices into them or None) when `dataset` is tensor-backed, else None."""
    if isinstance(dataset, TensorDataset):
        return tuple(dataset.tensors), None
    if isinstance(dataset, Subset) and isinstance(dataset.dataset, TensorDataset):
        return tuple(dataset.dataset.tensors), torch.as_tensor(dataset.indices, dtype=torch.long)
    return None


def fits_on(device: torch.device, tensors: tuple[torch.Tensor, ...]) -> bool:
    """Whether the tensors may live on `device` for the whole run (always on the CPU)."""
    if device.type != "cuda":
        return True
    free, _ = torch.cuda.mem_get_info(device)
    return sum(t.numel() * t.element_size() for t in tensors) <= DEVICE_SHARE * free


def index_seed(seed: int, rows: np.ndarray) -> int:
    """A 64-bit augmentation seed from the recipe's seed and the rows a batch holds."""
    return seed_from(seed, hashlib.blake2b(np.ascontiguousarray(rows, dtype=np.int64).tobytes(), digest_size=8).digest())


class TensorLoader:
    """Iterates batches of a tensor-backed split in `sampler` order (all rows in order without one).

    Offers what the trainer and the tools read from a DataLoader: `len`, `batch_size`,
    `sampler`, `dataset`, `collate_fn` (the split's augmentation or None) and `generator`
    (None: nothing random is drawn from a generator here).
    """

    generator = None

    def __init__(
        self,
        dataset: Dataset,
        *,
        batch_size: int,
        sampler: Any = None,
        augment: Any = None,
        device: torch.device | str | None = None,
        placed: dict[tuple[int, str], torch.Tensor] | None = None,
    ):
        """`placed` maps (id of a host tensor, device) to its copy there: the loaders of one
        experiment share it, so train and validation (two Subsets of one TensorDataset) hold one
        device copy of the data between them, not one each."""
        source = tensor_source(dataset)
        if source is None:
            raise TypeError(f"TensorLoader needs a TensorDataset or a Subset of one, got {type(dataset).__name__}")
        tensors, rows = source
        device = torch.device(device or "cpu")
        if not fits_on(device, tensors):
            device = torch.device("cpu")
        self.dataset = dataset
        self.batch_size = batch_size
        self.sampler = sampler
        self.collate_fn = augment
        self.device = device
        placed = {} if placed is None else placed
        for t in tensors:
            if (id(t), str(device)) not in placed:
                placed[id(t), str(device)] = t.to(device)
        self.tensors = tuple(placed[id(t), str(device)] for t in tensors)
        self.rows = rows  # host copy, for seeds; None: the split is every row of the tensors

    def __len__(self) -> int:
        n = len(self.sampler) if self.sampler is not None else len(self.dataset)
        return -(-n // self.batch_size)

    def __iter__(self) -> Iterator[Any]:
        if self.sampler is None:
            order = torch.arange(len(self.dataset))
        elif hasattr(self.sampler, "order"):  # training/sampler.py's ResumableSampler
            order = self.sampler.order()
        else:
            order = torch.as_tensor(list(self.sampler), dtype=torch.long)
        rows = self.rows[order] if self.rows is not None else order
        on_device = rows.to(self.device)
        for start in range(0, len(rows), self.batch_size):
            index = on_device[start : start + self.batch_size]
            batch = [t.index_select(0, index) for t in self.tensors]
            if self.collate_fn is None:
                yield batch  # a list, as default_collate gives for TensorDataset rows
                continue
            x, y = batch
            seed = index_seed(self.collate_fn.seed, rows[start : start + self.batch_size].numpy())
            yield self.collate_fn.apply_seeded(x, y, seed)
