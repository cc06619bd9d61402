"""Plain text files for language modelling: byte blocks, y = x shifted by one, held-out folders."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from deepstrata.data.base import build_data
from deepstrata.errors import DataError
from deepstrata.registry import DATASETS


def test_blocks_are_next_byte_pairs(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("hello world, héllo again\n", encoding="utf-8")
    (tmp_path / "b.txt").write_text("second file", encoding="utf-8")
    data = DATASETS.get("text_files")(root=str(tmp_path), block_size=8)
    stream = "hello world, héllo again\n".encode() + b"\n" + b"second file"
    n = (len(stream) - 1) // 8
    assert data.x.shape == data.y.shape == (n, 8) and data.x.dtype == torch.int64
    assert bytes(data.x[0].tolist()) == stream[:8] and bytes(data.y[0].tolist()) == stream[1:9]
    assert torch.equal(data.x[1:, 0], data.y[:-1, -1]), "blocks tile the stream without overlap or gaps"
    assert data.task == "language_modeling" and data.model_defaults == {"vocab_size": 256}


def test_single_file_and_train_test_folders(tmp_path: Path) -> None:
    (tmp_path / "one.txt").write_text("abcdefghij" * 10)
    single = DATASETS.get("text_files")(path=str(tmp_path / "one.txt"), block_size=16)
    assert single.x.shape == (6, 16) and single.test_x is None
    for part, text in (("train", "the training text " * 20), ("test", "held out text " * 5)):
        (tmp_path / "corpus" / part).mkdir(parents=True)
        (tmp_path / "corpus" / part / "f.txt").write_text(text)
    bundle = build_data("text_files", seed=0, val_fraction=0.1, test_fraction=0.2, dataset_kwargs={"root": str(tmp_path / "corpus"), "block_size": 16})
    assert bundle.split["test"] == "official" and bundle.split["stratified"] is False
    test_bytes = b"".join(bytes(bundle.test[i][0].tolist()) for i in range(len(bundle.test)))
    assert b"training" not in test_bytes and b"held out" in test_bytes


def test_bad_text_inputs(tmp_path: Path) -> None:
    (tmp_path / "bin.txt").write_bytes(b"ok \xff\xfe binary")
    with pytest.raises(DataError, match=r"bin\.txt: not UTF-8 text"):
        DATASETS.get("text_files")(root=str(tmp_path))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"empty: no files matching '\*\.txt'"):
        DATASETS.get("text_files")(root=str(tmp_path / "empty"))
    (tmp_path / "short.txt").write_text("tiny")
    with pytest.raises(DataError, match="shorter than one block of 129"):
        DATASETS.get("text_files")(path=str(tmp_path / "short.txt"))
