"""Reading pickled data files without running the code a pickle may carry.

Problem: a pickle is a small program; `pickle.load` on a downloaded file (CIFAR's "python
batches" are pickles) will call any importable function the file names, such as
`os.system`, before the caller sees a single array (Python docs, "pickle: Warning").
Idea: a `pickle.Unpickler` whose `find_class` admits only the few globals needed to rebuild
numpy arrays and dtypes (plus `_codecs.encode`, which protocol-2 pickles use for bytes);
lists, dicts, tuples, bytes, strings and numbers need no globals at all. Everything else is
refused before it can be called, with an error naming the file and the refused global.
"""

from __future__ import annotations

import importlib
import io
import pickle
from pathlib import Path
from typing import Any

from deepstrata.errors import DataError

# (module, name) written in the pickle -> candidates to import (numpy 2 moved numpy.core to numpy._core).
_ALLOWED: dict[tuple[str, str], tuple[str, ...]] = {
    ("numpy.core.multiarray", "_reconstruct"): ("numpy._core.multiarray", "numpy.core.multiarray"),
    ("numpy._core.multiarray", "_reconstruct"): ("numpy._core.multiarray", "numpy.core.multiarray"),
    ("numpy.core.numeric", "_frombuffer"): ("numpy._core.numeric", "numpy.core.numeric"),
    ("numpy._core.numeric", "_frombuffer"): ("numpy._core.numeric", "numpy.core.numeric"),
    ("numpy", "ndarray"): ("numpy",),
    ("numpy", "dtype"): ("numpy",),
    ("_codecs", "encode"): ("_codecs",),
}


class UnsafePickleError(DataError):
    """The pickle names a global outside the allowed set: it could run code, so it is refused."""


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler admitting only numpy arrays/dtypes, lists, dicts, tuples, bytes, strings and numbers."""

    def __init__(self, file: io.BufferedIOBase, *, source: str, encoding: str = "bytes"):
        super().__init__(file, encoding=encoding)
        self.source = source

    def find_class(self, module: str, name: str) -> Any:
        candidates = _ALLOWED.get((module, name))
        if candidates is None:
            raise UnsafePickleError(
                f"{self.source}: refused to unpickle '{module}.{name}': this loader only rebuilds numpy arrays, "
                "lists, dicts, bytes, strings and numbers, and that global could run code; is this really a data file?"
            )
        for candidate in candidates:
            try:
                return getattr(importlib.import_module(candidate), name)
            except (ImportError, AttributeError):
                continue
        raise UnsafePickleError(f"{self.source}: '{module}.{name}' is not available in this numpy version")

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError(f"{self.source}: refused a persistent reference in the pickle; data files do not need them")


def load_restricted(path: str | Path) -> Any:
    """Unpickle `path` with `RestrictedUnpickler`; every failure is a DataError naming the file.

    Python-2 pickles (the original CIFAR batches) keep their str as bytes (`encoding="bytes"`).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    with path.open("rb") as f:
        try:
            return RestrictedUnpickler(f, source=str(path)).load()
        except UnsafePickleError:
            raise
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError, KeyError, AttributeError, MemoryError) as err:
            raise DataError(f"{path}: not a readable pickle data file ({type(err).__name__}: {err})") from None
