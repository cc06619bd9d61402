"""Where a file-based dataset's files are: `data.root`, `data.path`, or `$DEEPSTRATA_DATA/<name>`.

Problem: users keep their data in their own folders, tests generate it in temporary ones, and
a shared machine keeps a default copy; each loader re-deciding where to look drifts apart.
Idea: one resolver with one rule (an explicit `root` folder or `path` file wins, else the
folder named after the dataset under `$DEEPSTRATA_DATA`) and one clear error when nothing is
there, naming the setting to change.
"""

from __future__ import annotations

import os
from pathlib import Path

from deepstrata.errors import DataError

DATA_ENV = "DEEPSTRATA_DATA"


def resolve_source(name: str, *, root: str | None, path: str | None = None, what: str = "its files") -> Path:
    """The file (`path`) or folder (`root`) to read; exactly one of them, or the environment default."""
    if root and path:
        raise DataError(f"dataset '{name}': give data.root (a folder) or data.path (one file), not both")
    if path:
        file = Path(path).expanduser()
        if not file.is_file():
            raise DataError(f"{file}: file not found; data.path must name an existing file for dataset '{name}'")
        return file
    if root:
        folder = Path(root).expanduser()
    elif os.environ.get(DATA_ENV):
        folder = Path(os.environ[DATA_ENV]).expanduser() / name
    else:
        hint = "data.root=DIR or data.path=FILE" if path is not None else "data.root=DIR"
        raise DataError(f"dataset '{name}' needs {what}: set {hint}, or the environment variable {DATA_ENV}=DIR holding {name}/")
    if not folder.is_dir():
        raise DataError(f"{folder}: folder not found; set data.root to the folder holding {what} for dataset '{name}'")
    return folder


def split_folders(folder: Path) -> tuple[Path, Path | None]:
    """(train part, official test part or None): `folder/train` + `folder/test` when both exist."""
    train, test = folder / "train", folder / "test"
    if train.is_dir() and test.is_dir():
        return train, test
    return folder, None
