"""Results computed from exact bytes, kept on disk so the next run does not redo them.

Problem: some facts are expensive to compute and never change for the same input: the
training images' reference statistics that model.json records (centre of mass, borders, grey
levels over 60,000 MNIST images) took 1.4 s of every MNIST run's start-up, and the catalogue
of registered components (read from the package source with `ast`, so that `strata --help`
imports no torch) took about 0.2 s of every `strata` command.
Idea: key a JSON result by a hash of the exact input bytes and of what is computed (a name
that changes whenever the computation does), store it as `<kind>/<key>.json` under
`$DEEPSTRATA_CACHE` (default `~/.cache/deepstrata`), written atomically. Different bytes give a
different key, so a stale entry is never read; an unreadable entry is recomputed and
replaced; `DEEPSTRATA_CACHE=off` computes every time; a cache folder that cannot be written
only costs the time. JSON only, no pickle: an entry is data, never code. No numpy or torch
here: the CLI imports this before either.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

OFF = "off"

Bytes = bytes | bytearray | memoryview


def cache_root() -> Path | None:
    """Where entries live, or None when `DEEPSTRATA_CACHE=off`."""
    value = os.environ.get("DEEPSTRATA_CACHE", "")
    if value.lower() == OFF:
        return None
    return Path(value).expanduser() if value else Path.home() / ".cache" / "deepstrata"


def content_key(kind: str, parts: Iterable[Bytes]) -> str:
    """A hex key from `kind` and the byte strings, each length-prefixed so no two splits collide."""
    digest = hashlib.blake2b(kind.encode(), digest_size=16)
    for part in parts:
        view = memoryview(part).cast("B")
        digest.update(len(view).to_bytes(8, "little"))
        digest.update(view)
    return digest.hexdigest()


def array_parts(array: Any) -> list[Bytes]:
    """A numpy array as key parts: its dtype and shape, then its bytes."""
    import numpy as np

    return [f"{array.dtype.str}{array.shape}".encode(), memoryview(np.ascontiguousarray(array)).cast("B")]


def cached_json(kind: str, parts: Iterable[Bytes], compute: Callable[[], Any]) -> Any:
    """`compute()`'s JSON-able result for these bytes: read from the cache, or computed and stored there."""
    root = cache_root()
    if root is None:
        return compute()
    path = root / kind / f"{content_key(kind, parts)}.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        pass  # absent, unreadable or damaged: compute it again
    result = compute()
    try:
        _write_whole(path, json.dumps(result))
    except OSError:
        pass  # a read-only home: the result is still right, only not kept
    return result


def _write_whole(path: Path, text: str) -> None:
    """Write to a temporary file beside `path`, then rename it into place: a reader (another
    process starting at the same moment) sees no entry or a whole one. No fsync: a cache entry
    lost to a power cut is only recomputed. (run/atomic.py is the durable version; this module
    sits below it, beside errors.py, because the registry uses it.)"""
    import tempfile

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, partial = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(partial, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(partial)
        raise
