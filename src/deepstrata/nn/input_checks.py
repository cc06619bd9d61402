"""Input checks at layer boundaries: shape errors that name the layer and both shapes.

Problem: a wrongly shaped batch fails deep inside torch with a message about matrix sizes that
names neither the layer nor what it expected, far from the mistake.
Idea: every model checks its input where it enters and raises one sentence naming the layer,
the expected shape and the shape it got: `ResNet.conv1 expected (N, 1, *, *) input, got (32, 64)`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def check_input(layer: str, x: torch.Tensor, expected: Sequence[int | None]) -> None:
    """Raise a shape error naming the layer and both shapes; None in `expected` is any size.

    `expected` describes one batch, e.g. (None, 1, 8, 8) for N grey 8x8 images.
    """
    ok = x.dim() == len(expected) and all(e is None or e == s for e, s in zip(expected, x.shape))
    if not ok:
        want = "(" + ", ".join("N" if i == 0 and e is None else "*" if e is None else str(e) for i, e in enumerate(expected)) + ")"
        raise ValueError(f"{layer} expected {want} input, got {tuple(x.shape)}")


def check_tokens(layer: str, x: torch.Tensor, max_len: int) -> None:
    """Token ids must be (N, T) integers with 1 <= T <= max_len."""
    if x.dim() != 2 or x.dtype not in (torch.int64, torch.int32):
        raise ValueError(f"{layer} expected (N, T) integer token ids, got {x.dtype} {tuple(x.shape)}")
    if not 1 <= x.shape[1] <= max_len:
        raise ValueError(f"{layer} expected (N, T) token ids with 1 <= T <= max_len={max_len}, got {tuple(x.shape)}")
