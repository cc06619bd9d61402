"""deepstrata: every idea of deep learning as a real, tested, composable component on PyTorch.

`import deepstrata` is cheap: the API functions import torch only when first used.

    import deepstrata as ds
    result = ds.train("recipes/digits_cnn.yaml", ["trainer.max_epochs=5"])
    predictor = ds.load(result.run_dir)
    run = ds.Run.open(result.run_dir)      # a finished run: recipe, model, split, tools, lineage
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_API = ("train", "evaluate", "load", "create", "finetune", "apply", "open_run", "Run", "Predictor", "RunResult")


def __getattr__(name: str) -> Any:
    if name in _API:
        from deepstrata import api

        return getattr(api, name)
    if name == "list_components":
        from deepstrata.catalog import list_components

        return list_components
    raise AttributeError(f"module 'deepstrata' has no attribute '{name}'")


__all__ = [*_API, "list_components", "__version__"]
