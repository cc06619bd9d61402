"""Plain text files for language modelling, as bytes: no tokenizer to train, nothing unknown.

Problem: a language model needs long streams of real text cut into fixed-length training
examples, and a tokenizer choice baked into the loader would tie every model to it.
Idea: read UTF-8 files (`data.path`, or every `*.txt` under `data.root`, sorted), concatenate
them with a newline between files, and cut the byte stream into non-overlapping blocks:
x = bytes[i : i+T], y = bytes[i+1 : i+T+1], so y is x shifted by one (next-byte prediction
over a vocabulary of 256, as in byte-level models, e.g. Xue et al. 2022, ByT5). Tokenizers
(character, BPE) are applied by the models that want them, on top of this stream.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from deepstrata.data.base import TensorData
from deepstrata.data.source import resolve_source, split_folders
from deepstrata.errors import DataError
from deepstrata.registry import register_dataset

VOCAB = 256


def _read_text(files: list[Path]) -> bytes:
    parts = []
    for file in files:
        raw = file.read_bytes()
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as err:
            raise DataError(f"{file}: not UTF-8 text (byte {err.start}: {err.reason}); text_files reads plain text only") from None
        parts.append(raw)
    return b"\n".join(parts)


def _text_files(folder: Path, pattern: str) -> list[Path]:
    files = sorted(p for p in folder.rglob(pattern) if p.is_file() and not p.name.startswith("."))
    if not files:
        raise DataError(f"{folder}: no files matching '{pattern}'; put plain text files there or set data.pattern")
    return files


def _blocks(stream: bytes, block_size: int, source: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, T) inputs and (N, T) next-byte targets from non-overlapping windows of T + 1 bytes."""
    ids = torch.from_numpy(np.frombuffer(stream, dtype=np.uint8).astype(np.int64))
    n = (len(ids) - 1) // block_size
    if n < 1:
        raise DataError(f"{source}: {len(ids)} bytes of text is shorter than one block of {block_size + 1}; lower data.block_size or add text")
    starts = torch.arange(n) * block_size
    window = starts[:, None] + torch.arange(block_size + 1)  # (N, T + 1)
    chunks = ids[window]
    return chunks[:, :-1].contiguous(), chunks[:, 1:].contiguous()


@register_dataset("text_files")
def text_files(*, root: str | None = None, path: str | None = None, block_size: int = 128, pattern: str = "*.txt") -> TensorData:
    """Plain UTF-8 text as byte blocks for language modelling: x (N, T) byte ids, y = x shifted by one."""
    if block_size < 1:
        raise DataError(f"text_files: block_size must be at least 1, got {block_size}")
    source = resolve_source("text_files", root=root, path=path, what="plain text files")
    if source.is_file():
        train_files, test_files = [source], None
    else:
        train_dir, test_dir = split_folders(source)
        train_files = _text_files(train_dir, pattern)
        test_files = _text_files(test_dir, pattern) if test_dir else None
    x, y = _blocks(_read_text(train_files), block_size, str(source))
    test_x, test_y = _blocks(_read_text(test_files), block_size, str(source / "test")) if test_files else (None, None)
    return TensorData(
        x=x,
        y=y,
        test_x=test_x,
        test_y=test_y,
        task="language_modeling",
        input_spec={"raw": "UTF-8 bytes", "dtype": "long", "vocab_size": VOCAB},
        description=f"text_files {source}: {len(train_files)} file(s), {len(x)} blocks of {block_size} bytes",
        model_defaults={"vocab_size": VOCAB},
    )
