"""The `strata` command: fast help, one-line errors with exit code 2, the JSON last line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from deepstrata.cli.main import main

REPO = Path(__file__).resolve().parents[2]


def test_help_and_list_do_not_import_torch() -> None:
    code = (
        "import sys\n"
        "from deepstrata.cli.main import main\n"
        "for argv in (['--help'], ['list'], ['list', 'models'], ['train', '--help']):\n"
        "    try:\n"
        "        main(argv)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "NO-TORCH"


def test_list_models_prints_names_with_summaries(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "models"]) == 0
    out = capsys.readouterr().out
    assert "small_cnn" in out and "Small VGG-style CNN" in out


def test_list_unknown_kind(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "modles"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == err.strip().splitlines()[0]  # one line
    assert "did you mean models?" in err


def _run_strata(*args: str) -> subprocess.CompletedProcess[str]:
    strata = Path(sys.executable).with_name("strata")
    return subprocess.run([str(strata), *args], capture_output=True, text=True, cwd=REPO)


def test_misspelled_key_is_one_line_exit_2(tmp_path: Path, tiny_recipe: dict) -> None:
    tiny_recipe["trainer"]["max_epoch"] = 3
    path = tmp_path / "typo.yaml"
    path.write_text(yaml.safe_dump(tiny_recipe))
    proc = _run_strata("train", str(path))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "trainer.max_epoch: unknown key; did you mean max_epochs?" in lines[0]
    assert "Traceback" not in proc.stderr


def test_misspelled_set_key_is_one_line_exit_2(tmp_path: Path, tiny_recipe: dict) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text(yaml.safe_dump(tiny_recipe))
    proc = _run_strata("train", str(path), "--set", "optimizer.lrr=0.1")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]
    assert "optimizer.lrr: unknown key; did you mean lr?" in proc.stderr


def test_debug_flag_shows_the_traceback(tmp_path: Path) -> None:
    proc = _run_strata("evaluate", str(tmp_path), "--debug")
    assert proc.returncode == 2
    assert "Traceback" in proc.stderr and "is not a run directory" in proc.stderr


def test_missing_file_is_exit_2() -> None:
    proc = _run_strata("train", "recipes/no_such_recipe.yaml")
    assert proc.returncode == 2 and "does not exist" in proc.stderr


@pytest.mark.e2e
def test_train_json_evaluate_predict_report(tmp_path: Path, tiny_recipe: dict, capsys: pytest.CaptureFixture[str]) -> None:
    """A tiny real run through the CLI in-process: JSON last line, evaluate equal, predict works."""
    import numpy as np

    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(tiny_recipe))
    assert main(["train", str(path), "--json", "--set", "trainer.max_epochs=3"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    result = json.loads(last)
    assert set(result) == {"run_dir", "metrics"}
    assert set(result["metrics"]) == {"test/loss", "test/accuracy"}
    assert result["metrics"]["test/accuracy"] > 0.5  # 3 epochs of a tiny CNN: far above chance (0.1)

    assert main(["evaluate", result["run_dir"], "--json"]) == 0
    again = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert again["metrics"] == result["metrics"]

    from sklearn.datasets import load_digits

    np.save(tmp_path / "x.npy", load_digits().images[:3])
    assert main(["predict", result["run_dir"], str(tmp_path / "x.npy"), "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    assert len(rows) == 3 and all(r["class_name"] in [str(i) for i in range(10)] for r in rows)

    assert main(["report", result["run_dir"]]) == 0
    assert capsys.readouterr().out.strip().endswith("report.html")

    assert main(["evaluate", result["run_dir"], "--split", "bogus"]) == 2
