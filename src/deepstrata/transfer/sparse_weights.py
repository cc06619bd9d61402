"""Sparse weights on disk: per tensor a packed bitmask and its non-zero values, in safetensors.

Problem: a model with 90% of its weights pruned is stored by `model.safetensors` as densely as
before, zeros and all, so pruning buys nothing on disk or in a download.
Idea: the format `deepstrata-sparse-bitmask-v1`. A tensor whose encoding is smaller is stored as
two tensors, `<name>#mask` (U8: one bit per entry in row-major order, bit i of byte j being entry
8j + i, little-endian within the byte, padded with zero bits) and `<name>#values` (the tensor's
dtype: the entries whose bit is set, in order). An entry is "zero" only when all its bytes are
zero (+0.0; a -0.0 is kept as a value), so decoding gives back the identical bytes. Other tensors
are stored as they are. The file's metadata holds `deepstrata_weights: sparse-bitmask-v1` and
`sparse_tensors`, JSON {name: {"shape": [...]}}, so the dense shapes are known from the header
alone (a dense tensor's dtype is its `#values` tensor's). At 32-bit floats a tensor is smaller this way once more than 1/32 of
its entries are zero; at 90% sparsity it takes 0.1 + 1/32 of its dense size.
(The bitmask layout of Han et al. 2016, "Deep Compression", without its index coding.)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

FORMAT = "sparse-bitmask-v1"
FORMAT_KEY = "deepstrata_weights"
TENSORS_KEY = "sparse_tensors"
MASK, VALUES = "#mask", "#values"
_BITS = torch.tensor([1, 2, 4, 8, 16, 32, 64, 128], dtype=torch.uint8)


def nonzero_entries(tensor: torch.Tensor) -> torch.Tensor:
    """(numel,) bool: entries with any non-zero byte (so -0.0 counts as non-zero: it is stored)."""
    flat = tensor.detach().contiguous().reshape(-1)
    if flat.numel() == 0:
        return torch.zeros(0, dtype=torch.bool)
    return flat.view(torch.uint8).view(flat.numel(), flat.element_size()).ne(0).any(dim=1)


def pack_bits(keep: torch.Tensor) -> torch.Tensor:
    """(n,) bool -> (ceil(n / 8),) uint8, entry 8j + i in bit i of byte j."""
    padded = torch.zeros(-(-keep.numel() // 8) * 8, dtype=torch.uint8)
    padded[: keep.numel()] = keep.to(torch.uint8)
    return (padded.view(-1, 8) * _BITS).sum(dim=1, dtype=torch.uint8)


def unpack_bits(packed: torch.Tensor, n: int) -> torch.Tensor:
    """(ceil(n / 8),) uint8 -> (n,) bool; the inverse of `pack_bits`."""
    return (packed.view(-1, 1) & _BITS).ne(0).reshape(-1)[:n]


def encode(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(tensors to save, metadata): each tensor that takes fewer bytes as mask + values is stored so."""
    out: dict[str, torch.Tensor] = {}
    sparse: dict[str, dict[str, Any]] = {}
    for name, tensor in state.items():
        if MASK in name or VALUES in name:
            raise ValueError(f"sparse storage: the tensor name '{name}' contains '{MASK}' or '{VALUES}', which the format reserves")
        tensor = tensor.detach().cpu().contiguous()
        keep = nonzero_entries(tensor)
        packed = pack_bits(keep)
        sparse_bytes = packed.numel() + int(keep.sum()) * tensor.element_size()
        if sparse_bytes < tensor.numel() * tensor.element_size():
            out[name + MASK] = packed
            out[name + VALUES] = tensor.reshape(-1)[keep].clone()
            sparse[name] = {"shape": list(tensor.shape)}
        else:
            out[name] = tensor
    return out, {"format": "pt", FORMAT_KEY: FORMAT, TENSORS_KEY: json.dumps(sparse, sort_keys=True)}


def decode(tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None) -> dict[str, torch.Tensor]:
    """The dense state dict back from `encode`'s tensors and metadata (identical bytes)."""
    sparse = json.loads((metadata or {}).get(TENSORS_KEY, "{}"))
    state = {name: t for name, t in tensors.items() if not name.endswith((MASK, VALUES))}
    for name, info in sparse.items():
        shape = tuple(int(d) for d in info["shape"])
        values = tensors[name + VALUES]
        numel = 1
        for d in shape:
            numel *= d
        keep = unpack_bits(tensors[name + MASK], numel)
        if int(keep.sum()) != values.numel():
            raise ValueError(f"sparse tensor '{name}': its mask sets {int(keep.sum())} entries but {values.numel()} values are stored")
        dense = torch.zeros(numel, dtype=values.dtype, device=values.device)  # all-zero bytes: +0.0
        dense[keep.to(values.device)] = values
        state[name] = dense.view(shape)
    return state


def save_sparse(state: dict[str, torch.Tensor], path: str | Path) -> None:
    """Write `state` to `path` in the sparse format (a safetensors file)."""
    from safetensors.torch import save_file

    tensors, metadata = encode(state)
    save_file(tensors, str(path), metadata=metadata)


def is_sparse(path: str | Path) -> bool:
    """Whether the safetensors file at `path` is in this format (read from its header)."""
    return file_metadata(path).get(FORMAT_KEY) == FORMAT


def file_metadata(path: str | Path) -> dict[str, str]:
    from safetensors import safe_open

    with safe_open(str(path), "pt") as fh:
        return dict(fh.metadata() or {})


def load_dense(path: str | Path, *, device: str = "cpu") -> dict[str, torch.Tensor]:
    """The dense state dict of a safetensors file, whether sparse-encoded or plain."""
    from safetensors.torch import load_file

    tensors = load_file(str(path), device=device)
    metadata = file_metadata(path)
    return decode(tensors, metadata) if metadata.get(FORMAT_KEY) == FORMAT else tensors


def dense_header(path: str | Path, stored: dict[str, tuple[tuple[int, ...], str]]) -> dict[str, tuple[tuple[int, ...], str]] | None:
    """{name: (dense shape, dtype name)} of a sparse file, from `stored` (the file's own header:
    name -> (shape, safetensors dtype name)) and its metadata; None for a plain file."""
    metadata = file_metadata(path)
    if metadata.get(FORMAT_KEY) != FORMAT:
        return None
    header = {k: v for k, v in stored.items() if not k.endswith((MASK, VALUES))}
    try:
        for name, info in json.loads(metadata.get(TENSORS_KEY, "{}")).items():
            header[name] = (tuple(int(d) for d in info["shape"]), stored[name + VALUES][1])
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        from deepstrata.errors import UserError

        raise UserError(f"{path}: its '{TENSORS_KEY}' metadata is not the sparse format's ({err}); the file is damaged: restore it or prune again") from None
    return header
