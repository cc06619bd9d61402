"""File names that stay inside the folder they are written to or read from.

Problem: an export writes several files (the graph, its external weights), and an ONNX file
names its external-data files itself; a name such as `../../.bashrc` or `/etc/passwd` would
make writing an export, or reading a downloaded one, touch a file outside its folder.
Idea: every relative name is resolved against the folder (symbolic links followed) and refused
unless the result is still inside it; absolute names and empty names are refused outright.
"""

from __future__ import annotations

from pathlib import Path, PurePath

from deepstrata.errors import UserError


def inside(folder: str | Path, name: str, *, what: str = "file") -> Path:
    """`folder / name`, refused with a UserError when it would leave `folder`."""
    root = Path(folder).resolve()
    pure = PurePath(name)
    if not name or not pure.parts or pure.is_absolute() or name.startswith(("/", "\\")) or ":" in pure.parts[0]:
        raise UserError(f"{what} '{name}' is not a plain relative name; an export writes and reads only files inside {root}")
    target = (root / pure).resolve()
    if target != root and root not in target.parents:
        raise UserError(f"{what} '{name}' resolves to {target}, outside {root}; refusing to write or read it")
    if target == root:
        raise UserError(f"{what} '{name}' names the folder {root} itself, not a file in it")
    return target
