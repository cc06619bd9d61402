"""No unsafe deserialisation anywhere in the package source."""

from __future__ import annotations

import re
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "deepstrata"


def _code_lines() -> list[tuple[Path, int, str]]:
    out = []
    for path in SRC.rglob("*.py"):
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            stripped = line.split("#", 1)[0]
            out.append((path, i, stripped))
    return out


def test_every_torch_load_uses_weights_only() -> None:
    bad = [f"{p.relative_to(SRC)}:{i}" for p, i, line in _code_lines() if "torch.load(" in line and "weights_only=True" not in line]
    assert not bad, f"torch.load without weights_only=True: {bad}"


def test_no_plain_pickle_loads() -> None:
    """pickle.load/loads and np.load(allow_pickle=True) are banned; restricted unpicklers subclass pickle.Unpickler."""
    pattern = re.compile(r"pickle\.loads?\(|allow_pickle\s*=\s*True|dill\.|joblib\.load")
    bad = [f"{p.relative_to(SRC)}:{i}" for p, i, line in _code_lines() if pattern.search(line)]
    assert not bad, f"unsafe deserialisation: {bad}"
