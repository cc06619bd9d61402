"""Shared fixtures: a tiny recipe, a temporary runs directory, one torch thread per test worker."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("DEEPSTRATA_DATA", REPO.parent / "shared" / "data"))


# One OpenMP thread per test process, also in the processes tests start (`strata` subprocesses,
# torchrun ranks): `trainer.num_threads: auto` obeys OMP_NUM_THREADS, so two xdist workers on
# two cores never pick two threads each; and waiting threads sleep rather than spin.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# The on-disk cache of dataset figures (data/cache.py) lives in a fresh folder per test session.
os.environ.setdefault("DEEPSTRATA_CACHE", tempfile.mkdtemp(prefix="deepstrata_cache_"))



def _art_config_once() -> None:
    """Write ART's default ~/.art/config.json before any test worker imports ART.

    ART creates it on first import with a check-then-create that races: two xdist workers
    importing it at once on a fresh machine fail with NameError '_config'. The controller
    process imports this file before it starts the workers; os.replace makes the file appear whole.
    """
    import json

    folder = Path(os.path.expanduser("~")) / ".art"
    config = folder / "config.json"
    if config.exists() or not os.access(folder.parent, os.W_OK):
        return
    folder.mkdir(exist_ok=True)
    partial = folder / f"config.json.{os.getpid()}"
    partial.write_text(json.dumps({"ART_DATA_PATH": str(folder / "data")}, indent=4))
    os.replace(partial, config)


_art_config_once()

if SHARED_DATA.is_dir():
    # The MNIST-family loaders read $DEEPSTRATA_DATA/<name>/ when a recipe gives no data.root.
    os.environ.setdefault("DEEPSTRATA_DATA", str(SHARED_DATA))


def requires_shared_data(name: str) -> pytest.MarkDecorator:
    """Skip, with the reason shown, when ../shared/data/<name> is absent."""
    return pytest.mark.skipif(not (SHARED_DATA / name).is_dir(), reason=f"needs {SHARED_DATA / name} (see ../shared/data/README.md)")


def pytest_configure(config: pytest.Config) -> None:
    # Tests train many tiny models: one torch thread each. Under pytest-xdist two workers x two
    # threads on two cores would oversubscribe the CPU; alone, thread start-up outweighs the work.
    import torch

    torch.set_num_threads(1)


# A digits recipe that trains in about a second; tests copy it and override what they need.
TINY_RECIPE = {
    "name": "tiny",
    "seed": 0,
    "data": {"name": "digits", "batch_size": 64},
    "model": {"name": "small_cnn", "widths": [8, 16], "dropout": 0.0},
    "optimizer": {"name": "adamw", "lr": 0.01},
    "trainer": {"max_epochs": 2, "progress": "off", "monitor": "val/accuracy", "monitor_mode": "max"},
    "metrics": ["accuracy"],
}


@pytest.fixture
def tiny_recipe(tmp_path: Path) -> dict:
    """TINY_RECIPE writing its runs under tmp_path (a deep copy: tests may edit nested keys)."""
    import copy

    return {**copy.deepcopy(TINY_RECIPE), "output_dir": str(tmp_path / "runs")}
