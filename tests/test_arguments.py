"""Component arguments: typed against the factory's signature, and common hyper-parameters range-checked."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from deepstrata.arguments import RANGES, check_ranges, validate_component_kwargs
from deepstrata.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
STRATA = Path(sys.executable).with_name("strata")


def _factory(*, lr: float = 1e-3, dropout: float = 0.0, momentum: float = 0.9, name_like: float = 5.0) -> None: ...


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [("lr", -1.0, "must be 0 < lr"), ("lr", 0.0, "must be 0 < lr"), ("dropout", 2.0, "must be 0 <= dropout < 1"),
     ("dropout", 1.0, "must be 0 <= dropout < 1"), ("momentum", 1.5, "must be 0 <= momentum <= 1")],
)
def test_out_of_range_values_are_one_line_errors_naming_the_path(key: str, value: float, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as err:
        validate_component_kwargs(_factory, {key: value}, path="optimizer")
    assert str(err.value).startswith(f"optimizer.{key}:") and "\n" not in str(err.value)


def test_values_inside_the_ranges_and_other_names_pass() -> None:
    assert validate_component_kwargs(_factory, {"lr": 0.1, "dropout": 0.0, "momentum": 1.0, "name_like": -3.0}, path="x") == {
        "lr": 0.1, "dropout": 0.0, "momentum": 1.0, "name_like": -3.0,
    }
    check_ranges({"lr": None, "dropout": [0.1, 0.2], "lr_flag": True}, path="x")  # not numbers: left to the type check
    assert {"lr", "dropout", "weight_decay", "label_smoothing", "eps"} <= set(RANGES)


@pytest.mark.parametrize("override", ["optimizer.lr=-1", "model.dropout=2", "loss.label_smoothing=1.5"])
def test_the_cli_refuses_before_anything_runs(override: str, tmp_path: Path) -> None:
    proc = subprocess.run(
        [str(STRATA), "train", "recipes/digits_cnn.yaml", "--set", override, "--set", f"output_dir={tmp_path / 'runs'}"],
        capture_output=True, text=True, cwd=REPO, timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and override.split("=")[0] in proc.stderr
    assert not (tmp_path / "runs").exists()  # nothing was written
