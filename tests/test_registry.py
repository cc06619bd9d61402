"""The registry: found by source scan, equal to what registers at import, strict on names."""

from __future__ import annotations

import pytest

from deepstrata.errors import UserError
from deepstrata.registry import KINDS, Registry, catalog, registry


@pytest.mark.parametrize("kind", KINDS)
def test_source_scan_matches_runtime_registrations(kind: str) -> None:
    """`strata list` reads the source; what it lists must be exactly what registers at import."""
    live = registry(kind).load_all()
    scanned = catalog()[kind]
    assert set(scanned) == set(live)
    for name, factory in live.items():
        assert scanned[name].module == factory.__module__
        assert scanned[name].summary, f"{kind} '{name}' has no docstring summary"


def test_duplicate_name_is_an_error() -> None:
    reg = Registry("model")

    @reg.register("same")
    def first() -> None:
        """First."""

    def second() -> None:
        """Second."""

    with pytest.raises(ValueError, match="registered twice"):
        reg.register("same")(second)


def test_unknown_name_suggests_the_closest() -> None:
    with pytest.raises(UserError, match=r"unknown optimizer 'adamww'; did you mean adamw\?"):
        registry("optimizers").get("adamww")


def test_unknown_kind_lists_the_kinds() -> None:
    with pytest.raises(UserError, match="did you mean models"):
        registry("modles")


def test_get_imports_only_the_defining_module() -> None:
    import subprocess
    import sys

    code = (
        "import sys; from deepstrata.registry import MODELS; MODELS.get('mlp'); "
        "print('deepstrata.models.cnn' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
