"""The recipe's `data.augment` list, applied to batches in the DataLoader with reproducible randomness.

Problem: augmentation that draws from the global random generator makes a run depend on
how many worker processes load the data, on where a resumed run restarts, and on everything
else that draws random numbers; augmenting the validation or test split would bias the
measurements.
Idea: build the transforms once, run them in the loader's collate step (so worker processes
share the work), and seed each batch from the recipe's seed and a hash of the batch itself,
inside `torch.random.fork_rng` so the model's own randomness is left untouched. A batch is
then augmented identically whichever worker builds it and after a resume, and shuffling
makes every epoch's batches (and so their augmentations) new. Random transforms touch the
training split only; `every_split` ones (normalise) touch all.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import default_collate

from deepstrata.errors import ConfigError
from deepstrata.transforms.base import BatchTransform


class AugmentCollate:
    """collate_fn: default_collate, then each transform on the batch under a per-batch seed."""

    def __init__(self, transforms: Sequence[Any], *, seed: int):
        self.transforms = list(transforms)
        self.seed = seed

    def __call__(self, samples: list[Any]) -> Any:
        x, y = default_collate(samples)
        return self.apply(x, y)

    def batch_seed(self, x: torch.Tensor, y: torch.Tensor) -> int:
        """A 64-bit seed from the recipe's seed and the batch's bytes (about 1 ms for 128 MNIST images)."""
        digest = hashlib.blake2b(digest_size=8)
        for t in (x, y):
            digest.update(memoryview(t.detach().cpu().contiguous().numpy()).cast("B"))
        return seed_from(self.seed, digest.digest())

    def apply(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.apply_seeded(x, y, self.batch_seed(x, y))

    def apply_seeded(self, x: torch.Tensor, y: torch.Tensor, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The transforms under `seed`; the model's random streams (CPU, and this process's GPU) are left as they were."""
        # torch.manual_seed reseeds the GPUs too: put the current one back when CUDA is in use here.
        devices = [torch.cuda.current_device()] if torch.cuda.is_available() and torch.cuda.is_initialized() else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            for transform in self.transforms:
                x, y = apply_one(transform, x, y)
        return x, y


def seed_from(seed: int, digest: bytes) -> int:
    """A 64-bit seed from the recipe's seed and a digest of what identifies a batch."""
    words = np.random.SeedSequence([seed % 2**63, int.from_bytes(digest, "little")]).generate_state(2, dtype=np.uint32)
    return int(words[0]) << 32 | int(words[1])


def apply_one(transform: Any, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A BatchTransform maps (x, y); any other registered transform (token_deletion, ...) maps x alone."""
    if isinstance(transform, BatchTransform):
        return transform(x, y)
    return transform(x), y


def build_transforms(specs: Sequence[Any], *, defaults: dict[str, Any]) -> list[Any]:
    """Registered transforms from recipe specs; `num_classes` etc. come from the data when left out."""
    import inspect

    from deepstrata.config import validate_component_kwargs
    from deepstrata.registry import registry

    out = []
    for i, spec in enumerate(specs):
        factory = registry("transform").get(spec.name)
        kwargs = validate_component_kwargs(factory, spec.kwargs, path=f"data.augment.{i}")
        accepted = inspect.signature(factory).parameters
        kwargs.update({k: v for k, v in defaults.items() if k in accepted and kwargs.get(k) is None})
        try:
            out.append(factory(**kwargs))
        except ValueError as err:
            raise ConfigError(f"data.augment.{i} ({spec.name}): {err}") from None
    return out


def check_on_sample(transforms: Sequence[Any], specs: Sequence[Any], dataset: Any) -> None:
    """Run the transforms once on two examples, so a wrong pairing (cutmix on a table) fails before step 1."""
    if dataset is None or len(dataset) == 0:
        return
    x, y = default_collate([dataset[i] for i in range(min(2, len(dataset)))])
    for i, (transform, spec) in enumerate(zip(transforms, specs)):
        try:
            with torch.random.fork_rng(devices=[]):
                x, y = apply_one(transform, x, y)
        except ValueError as err:
            raise ConfigError(f"data.augment.{i} ({spec.name}) does not fit this data: {err}") from None


def split_collate(specs: Sequence[Any], *, split: str, seed: int, data: Any) -> AugmentCollate | None:
    """The collate_fn for one split, or None (plain default collate) when nothing applies to it.

    Every-split transforms record what prediction must replay in `data.input_spec`.
    """
    if not specs:
        return None
    transforms = build_transforms(specs, defaults=data.model_defaults())
    if split == "train":
        check_on_sample(transforms, specs, data.train)
    for t in transforms:
        data.input_spec.update(getattr(t, "input_spec_update", dict)())
    chosen = transforms if split == "train" else [t for t in transforms if getattr(t, "every_split", False)]
    return AugmentCollate(chosen, seed=seed) if chosen else None
