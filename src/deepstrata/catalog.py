"""What is registered, listed without importing torch.

Problem: `strata list models` should answer instantly, and importing every model module (and
torch) just to print names takes seconds.
Idea: read the registrations from the source (see `registry.catalog`), which gives each
name and the first line of its docstring for free.
"""

from __future__ import annotations

from deepstrata.registry import PLURALS, catalog, registry


def list_components(kind: str) -> dict[str, str]:
    """{name: one-line summary} of every registered component of `kind` ("models", ...)."""
    reg = registry(kind)
    return {name: entry.summary for name, entry in sorted(catalog()[reg.kind].items())}


def kinds() -> list[str]:
    return sorted(PLURALS.values())
