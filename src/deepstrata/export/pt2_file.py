"""`.pt2` files: the torch.export program itself, saved without pickle and read back the same way.

Problem: `torch.export.save` pickles the program's example inputs with `torch.save`, and
`torch.export.load` falls back to an unrestricted `torch.load` (weights_only off) for pickled weights, constants
or inputs: a `.pt2` file from someone else could run code when it is opened.
Idea: save with the example inputs dropped, so every tensor is stored as raw bytes described
by JSON (`use_pickle: false`); before loading any `.pt2`, read its zip directory and JSON
configs and refuse a file that holds a pickled payload of any kind. The run's metadata travels
as the archive's extra file `deepstrata.json`.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import torch

from deepstrata.errors import UserError
from deepstrata.export.program import Program, quiet

EXTRA = "deepstrata.json"


def write_pt2(program: Program, path: Path, *, metadata: dict[str, str]) -> list[Path]:
    """Save `program` as `path` with `metadata` (name -> JSON text) as the extra file deepstrata.json."""
    exported = program.exported
    saved_inputs = exported.example_inputs
    exported.example_inputs = None  # otherwise torch.save-pickled into data/sample_inputs/
    try:
        with quiet():
            torch.export.save(exported, str(path), extra_files={EXTRA: json.dumps({k: json.loads(v) if _is_json(v) else v for k, v in metadata.items()})})
    finally:
        exported.example_inputs = saved_inputs
    check_no_pickle(Path(path))
    return [Path(path)]


def check_no_pickle(path: Path) -> None:
    """Refuse a `.pt2` archive that stores anything torch.export.load would unpickle."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as err:
        raise UserError(f"{path}: not a .pt2 archive ({err}); export the run again with strata export RUN --format pt2") from None
    with archive:
        for info in archive.infolist():
            name = info.filename
            parts = name.split("/")
            if "sample_inputs" in parts and info.file_size > 0:
                raise UserError(f"{path}: holds pickled example inputs ({name}); deepstrata opens only .pt2 files without pickle (those strata export writes)")
            if len(parts) >= 3 and parts[-2] == "weights" and name.endswith(".pt"):
                raise UserError(f"{path}: holds weights in the legacy pickled format ({name}); export the model again with strata export")
            if name.endswith(("_weights_config.json", "_constants_config.json")):
                config = json.loads(archive.read(info))
                pickled = [k for k, v in (config.get("config") or {}).items() if v.get("use_pickle", True)]
                if pickled:
                    raise UserError(f"{path}: stores {', '.join(pickled[:3])} as pickle ({name}); deepstrata opens only .pt2 files without pickle")


def read_pt2(path: str | Path) -> tuple[torch.export.ExportedProgram, dict[str, Any]]:
    """(the program, its deepstrata metadata), after `check_no_pickle`."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"'{path}' does not exist; export a run first: strata export RUN --format pt2")
    check_no_pickle(path)
    extra = {EXTRA: ""}
    with quiet():
        program = torch.export.load(str(path), extra_files=extra)
    return program, json.loads(extra[EXTRA] or "{}")


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True
