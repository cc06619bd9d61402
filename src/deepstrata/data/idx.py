"""The IDX file format of MNIST, Fashion-MNIST, KMNIST and EMNIST.

Problem: the MNIST family ships as IDX files (gzip or raw); a loader that trusts their
headers can read garbage or run out of memory on a truncated or mislabelled file.
Idea: parse the header (magic 0x00000803 for images, 0x00000801 for labels; big-endian
int32 dimension sizes), check the body holds exactly prod(dims) bytes, and name the file and
the problem in every error.
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

from deepstrata.errors import DataError

IMAGE_MAGIC = 2051  # 0x00000803: unsigned bytes, 3 dimensions
LABEL_MAGIC = 2049  # 0x00000801: unsigned bytes, 1 dimension


def read_idx(path: str | Path, *, expect_magic: int | None = None) -> np.ndarray:
    """Read one IDX file (gzip or raw) into a uint8 array of its declared shape."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as err:
            raise DataError(f"{path}: corrupt gzip data ({err})") from None
    if len(raw) < 8:
        raise DataError(f"{path}: too short to be an IDX file ({len(raw)} bytes)")
    magic = struct.unpack(">i", raw[:4])[0]
    if magic not in (IMAGE_MAGIC, LABEL_MAGIC) or (expect_magic is not None and magic != expect_magic):
        want = expect_magic if expect_magic is not None else f"{IMAGE_MAGIC} or {LABEL_MAGIC}"
        raise DataError(f"{path}: wrong IDX magic number {magic} (expected {want}); is this an MNIST-style file?")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated IDX header")
    dims = struct.unpack(f">{ndim}i", raw[4:header])
    expected = int(np.prod(dims))
    body = len(raw) - header
    if body != expected:
        raise DataError(f"{path}: truncated or oversized IDX body: header declares {dims} = {expected} bytes, file holds {body}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)
