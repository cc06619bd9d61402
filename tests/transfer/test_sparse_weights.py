"""Sparse weight files: bitmask + non-zero values that decode to the identical bytes, and a pruned run stored so."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from deepstrata.transfer.sparse_weights import (
    FORMAT,
    FORMAT_KEY,
    dense_header,
    encode,
    file_metadata,
    is_sparse,
    load_dense,
    pack_bits,
    save_sparse,
    unpack_bits,
)
from deepstrata.errors import UserError
from deepstrata.run import artifact


def _bytes(t: torch.Tensor) -> bytes:
    return t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()


def _pruned(shape: tuple[int, ...], sparsity: float, dtype: torch.dtype = torch.float32, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    t = torch.randn(shape, generator=g).to(dtype)
    t[torch.rand(shape, generator=g) < sparsity] = 0
    return t


@pytest.mark.parametrize("n", [1, 7, 8, 9, 64, 1001])
def test_bits_pack_like_numpy_little_endian_and_unpack_back(n: int) -> None:
    keep = torch.rand(n, generator=torch.Generator().manual_seed(n)) < 0.3
    packed = pack_bits(keep)
    assert packed.dtype == torch.uint8 and packed.numel() == -(-n // 8)
    assert np.array_equal(packed.numpy(), np.packbits(keep.numpy(), bitorder="little"))
    assert torch.equal(unpack_bits(packed, n), keep)


def test_round_trip_is_bit_identical_for_every_dtype_and_odd_values(tmp_path: Path) -> None:
    weird = _pruned((13, 11), 0.9)
    weird[0, :4] = torch.tensor([-0.0, float("nan"), float("inf"), 1e-45])  # -0.0 and a denormal must survive as they are
    state = {
        "conv.weight": _pruned((8, 3, 5, 5), 0.9),
        "fc.weight": weird,
        "half.weight": _pruned((20, 30), 0.95, torch.bfloat16),
        "dense.weight": _pruned((10, 10), 0.0),  # nothing to gain: stored as it is
        "bn.num_batches_tracked": torch.tensor(17),
        "ids": torch.tensor([0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9]),
        "flags": torch.zeros(100, dtype=torch.bool),
        "empty": torch.zeros(0, 4),
    }
    path = tmp_path / "w.safetensors"
    save_sparse(state, path)
    back = load_dense(path)
    assert set(back) == set(state)
    for name, tensor in state.items():
        assert back[name].dtype == tensor.dtype and back[name].shape == tensor.shape, name
        assert _bytes(back[name]) == _bytes(tensor), name
    stored = load_file(str(path))
    assert "conv.weight#mask" in stored and "conv.weight" not in stored and "dense.weight" in stored
    assert is_sparse(path) and file_metadata(path)[FORMAT_KEY] == FORMAT
    assert dense_header(path, artifact.read_header(path))["conv.weight"] == ((8, 3, 5, 5), "F32")


def test_a_90_percent_sparse_tensor_takes_a_tenth_plus_its_bitmask() -> None:
    w = _pruned((200, 100), 0.9)
    tensors, _ = encode({"w": w})
    nnz = int((w != 0).sum())
    assert tensors["w#values"].numel() == nnz and tensors["w#mask"].numel() == 20000 // 8
    size = sum(t.numel() * t.element_size() for t in tensors.values())
    assert size == nnz * 4 + 2500 and size < 0.14 * w.numel() * 4


def test_a_plain_file_loads_unchanged_and_damaged_metadata_is_refused(tmp_path: Path) -> None:
    plain = tmp_path / "plain.safetensors"
    save_file({"w": torch.ones(3)}, str(plain), metadata={"format": "pt"})
    assert not is_sparse(plain) and dense_header(plain, artifact.read_header(plain)) is None and torch.equal(load_dense(plain)["w"], torch.ones(3))
    bad = tmp_path / "bad.safetensors"
    tensors, meta = encode({"w": _pruned((64,), 0.9)})
    save_file(tensors, str(bad), metadata={**meta, "sparse_tensors": "{not json"})
    with pytest.raises(UserError, match="sparse_tensors"):
        dense_header(bad, artifact.read_header(bad))


def test_save_model_sparse_loads_back_the_same_model(tmp_path: Path) -> None:
    from deepstrata.compression.pruning import apply_masks, magnitude_masks
    from deepstrata.registry import MODELS

    torch.manual_seed(0)
    model = MODELS.get("lenet5")(num_classes=10)
    apply_masks(model, magnitude_masks(model, 0.9))
    spec = {"architecture": "lenet5", "kwargs": {"num_classes": 10}}
    for folder in ("sparse", "dense"):
        (tmp_path / folder).mkdir()
    artifact.save_model(model, tmp_path / "sparse", spec, sparse=True)
    artifact.save_model(model, tmp_path / "dense", spec)
    loaded, _ = artifact.load_model(tmp_path / "sparse")
    for (name, a), b in zip(model.state_dict().items(), loaded.state_dict().values()):
        assert _bytes(a) == _bytes(b), name  # the -0.0s the mask product left included
    assert not is_sparse(tmp_path / "dense" / artifact.WEIGHTS)  # every other run keeps the plain format
    assert (tmp_path / "sparse" / artifact.WEIGHTS).stat().st_size < (tmp_path / "dense" / artifact.WEIGHTS).stat().st_size
