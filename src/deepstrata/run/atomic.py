"""Atomic file writes.

Problem: a process killed while writing a checkpoint leaves a truncated file where the last
good checkpoint used to be.
Idea: write to a temporary file in the same directory, fsync it, then `os.replace` it over
the target (atomic on POSIX) and fsync the directory; a reader sees the old file or the new
one, never half of one.

The temporary file is `.<name>.<random>.tmp`: hidden, so no reader lists it. It gets the mode
an ordinary `open()` would give (0o666 minus the umask), not mkstemp's 0600. A writer killed
mid-write (SIGKILL, power loss) leaves its temporary file behind; the rule for those: the next
atomic write of `<name>` deletes every `.<name>.<random>.tmp` beside it that was last modified
before this process started writing (before it imported this module), since such a file
belongs to a writer that is gone. A temporary file from a live writer in this process is newer
than that, so it is never touched.
"""

from __future__ import annotations

import os
import re
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

TMP_SUFFIX = ".tmp"
# Earlier than any temporary file this process creates (they all go through this module).
_STARTED = time.time()


def is_temporary(name: str) -> bool:
    """True for a name atomic_write uses while writing (`.<name>.<random>.tmp`)."""
    return name.startswith(".") and name.endswith(TMP_SUFFIX)


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call `write(tmp_path)` then move tmp_path over `path` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TMP_SUFFIX, dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # what open() would give, not mkstemp's 0600
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda p: p.write_text(text, encoding="utf-8"))


def remove_stale_temporaries(path: str | Path) -> list[Path]:
    """Delete `.<name>.<random>.tmp` files beside `path` left by a writer that died; returns them."""
    path = Path(path)
    pattern = re.compile(rf"\.{re.escape(path.name)}\.[A-Za-z0-9_]+{re.escape(TMP_SUFFIX)}")
    removed = []
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return removed
    for entry in entries:
        if not pattern.fullmatch(entry.name):
            continue
        try:
            if entry.is_file(follow_symlinks=False) and entry.stat(follow_symlinks=False).st_mtime < _STARTED:
                os.unlink(entry.path)
                removed.append(Path(entry.path))
        except OSError:
            continue  # another process cleaned it first
    return removed


def _umask() -> int:
    """The process umask, read without changing it where the system allows."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # elsewhere: set and restore (the only portable way to read it)
    os.umask(mask)
    return mask
