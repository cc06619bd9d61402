"""Checksums beside the weights: `<file>.sha256`, in the format `sha256sum -c` reads.

Problem: torch's zip reader skips its CRCs and safetensors checks a file's layout, not its
bytes, so a flipped bit inside a tensor loads silently as other weights (and `--resume` carried
on with them).
Idea: every weights and checkpoint file is written with its SHA-256 in a sidecar, and every
read checks the file against it first; a mismatch is a `UserError` naming the file.

The rules:
- `write_checked(path, write)` writes `path` atomically, then `<path>.sha256` atomically. The
  old sidecar is removed just before the new file replaces the old one, so whatever moment a
  kill strikes, the pair on disk either matches or has no sidecar: a kill can make a file load
  unverified, never make a good file read as damaged.
- `verify(path)` compares; a file without a sidecar (runs written before checksums, or a kill
  between the two renames) loads unverified, so old runs keep working. A sidecar that is not
  one `<64 hex digits>  <file name>` line is itself damaged: an error, never a pass.
- `cd RUN && sha256sum -c model.safetensors.sha256` checks a file by hand.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from pathlib import Path

from deepstrata.errors import UserError
from deepstrata.run.atomic import atomic_write, atomic_write_text

SUFFIX = ".sha256"
_LINE = re.compile(r"([0-9a-fA-F]{64}) [ *](.+)\n?")
_MAX_SIDECAR = 4096  # one line; anything longer is not a sidecar


def sidecar(path: str | Path) -> Path:
    """`<path>.sha256`."""
    path = Path(path)
    return path.with_name(path.name + SUFFIX)


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_checked(path: str | Path, write: Callable[[Path], None]) -> Path:
    """`atomic_write(path, write)`, then its SHA-256 in `<path>.sha256`; returns `path`."""
    path = Path(path)
    side = sidecar(path)
    found: dict[str, str] = {}

    def write_and_hash(tmp: Path) -> None:
        write(tmp)
        found["sha256"] = file_sha256(tmp)  # the bytes that are about to become `path`
        side.unlink(missing_ok=True)  # from here until the new sidecar lands: unverified, never "damaged"

    atomic_write(path, write_and_hash)
    atomic_write_text(side, f"{found['sha256']}  {path.name}\n")
    return path


def remove_checked(path: str | Path) -> None:
    """Delete `path` and its sidecar (a checkpoint that fell out of the top k)."""
    path = Path(path)
    path.unlink(missing_ok=True)
    sidecar(path).unlink(missing_ok=True)


def expected_sha256(path: str | Path) -> str | None:
    """The digest `<path>.sha256` records, or None without a sidecar; UserError when it is damaged."""
    path = Path(path)
    side = sidecar(path)
    if not side.exists():
        return None
    restore = f"restore it, or delete it to load {path.name} unverified"
    try:
        with open(side, "rb") as fh:
            raw = fh.read(_MAX_SIDECAR + 1)
    except OSError as err:
        raise UserError(f"{side}: cannot be read ({err.strerror or err}); {restore}") from None
    try:
        text = raw.decode("ascii") if len(raw) <= _MAX_SIDECAR else ""
    except UnicodeDecodeError:
        text = ""
    match = _LINE.fullmatch(text)
    if match is None or match.group(2) != path.name:
        raise UserError(f"{side}: not a checksum line for {path.name} (expected '<64 hex digits>  {path.name}'); the checksum file is damaged: {restore}")
    return match.group(1).lower()


def verify(path: str | Path, *, remedy: str = "restore it or train again") -> bool:
    """Check `path` against `<path>.sha256`: True when it matches, False when there is no sidecar.

    A mismatch raises UserError naming the file and `remedy` (what the user should do).
    """
    path = Path(path)
    expected = expected_sha256(path)
    if expected is None:
        return False
    try:
        actual = file_sha256(path)
    except OSError as err:
        raise UserError(f"{path}: cannot be read ({err.strerror or err}); {remedy}") from None
    if actual != expected:
        raise UserError(f"{path} does not match its SHA-256 ({sidecar(path).name}): the file was changed or damaged; {remedy}")
    return True
