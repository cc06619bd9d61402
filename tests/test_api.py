"""The top-level Python API: names resolve to the API functions, and importing is cheap."""

from __future__ import annotations

import subprocess
import sys


def test_top_level_names_are_the_api_functions_even_after_importing_subpackages() -> None:
    """`deepstrata.train` must stay the function: no subpackage may share an API name."""
    import deepstrata as ds
    import deepstrata.training.trainer  # noqa: F401 - the import that used to shadow ds.train
    from deepstrata import api

    for name in ("train", "evaluate", "load", "create", "finetune", "Predictor", "RunResult"):
        assert getattr(ds, name) is getattr(api, name), name
    assert callable(ds.train)


def test_import_deepstrata_does_not_import_torch() -> None:
    code = "import sys, deepstrata; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
