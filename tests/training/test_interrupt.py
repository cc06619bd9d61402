"""Ctrl-C / SIGTERM during `strata train`: a checkpoint, one line, exit 130/143, and a run that resumes."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
STRATA = Path(sys.executable).with_name("strata")


def _long_recipe(tmp_path: Path) -> Path:
    """The digits MLP for many epochs: still training when the signal comes."""
    raw = yaml.safe_load((REPO / "recipes" / "engine_mlp_digits.yaml").read_text())
    raw["output_dir"] = str(tmp_path / "runs")
    raw.setdefault("trainer", {}).update({"max_epochs": 200, "progress": "off", "num_threads": 1})
    path = tmp_path / "long.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _train_until_steps(tmp_path: Path, recipe: Path, steps: int) -> tuple[subprocess.Popen[str], Path]:
    proc = subprocess.Popen([str(STRATA), "train", str(recipe)], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline:
        runs = list((tmp_path / "runs").glob("*/*/metrics.jsonl"))
        if runs and sum(1 for line in runs[0].read_text().splitlines() if '"scope": "step"' in line) >= steps:
            return proc, runs[0].parent
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    proc.kill()
    raise AssertionError(f"training did not reach {steps} steps: {proc.communicate()[1][-2000:]}")


@pytest.mark.e2e
@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_writes_a_checkpoint_prints_one_line_and_exits_with_the_shell_code(tmp_path: Path, sig: int, code: int) -> None:
    proc, run_dir = _train_until_steps(tmp_path, _long_recipe(tmp_path), steps=5)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err[-2000:]
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("interrupted at epoch") and f"resume with: strata train --resume {run_dir}" in lines[0]

    info = json.loads((run_dir / "run.json").read_text())
    assert info["status"] == "interrupted" and info["interrupted_at"]["signal"] == sig
    import torch

    saved = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)
    assert saved["trainer"]["global_step"] == info["interrupted_at"]["step"] >= 5  # the state at the stop, not an older one

    evaluate = subprocess.run([str(STRATA), "evaluate", str(run_dir)], capture_output=True, text=True)
    assert evaluate.returncode == 2 and "strata train --resume" in evaluate.stderr, evaluate.stderr


def _second_signal_script() -> str:
    return (
        "import os, signal\n"
        "from types import SimpleNamespace\n"
        "from deepstrata.training.interrupt import TrainingInterrupted, interruptible\n"
        "trainer = SimpleNamespace(interrupted=0, state=SimpleNamespace(epoch=2, global_step=41))\n"
        "before = signal.getsignal(signal.SIGINT)\n"
        "with interruptible(trainer):\n"
        "    os.kill(os.getpid(), signal.SIGINT)\n"
        "    print('first', trainer.interrupted)\n"
        "    try:\n"
        "        os.kill(os.getpid(), signal.SIGINT)\n"
        "        print('not stopped')\n"
        "    except TrainingInterrupted as err:\n"
        "        print('second', err.immediate, err.exit_code, err)\n"
        "print('restored', signal.getsignal(signal.SIGINT) is before)\n"
    )


def test_first_signal_only_asks_the_second_stops_at_once() -> None:
    # The handler before the block is restored, whatever it was: a shell that starts the tests in
    # the background (`make test &`) hands them SIGINT ignored, not Python's default handler.
    out = subprocess.run([sys.executable, "-c", _second_signal_script()], capture_output=True, text=True, timeout=60)
    lines = out.stdout.strip().splitlines()
    assert lines[0] == f"first {int(signal.SIGINT)}", out.stderr
    assert lines[1].startswith("second True 130 interrupted at epoch 3 step 41 (stopped at once")
    assert lines[2] == "restored True"


@pytest.fixture
def finished_run(tmp_path: Path) -> Path:
    from deepstrata import api
    from tests.conftest import TINY_RECIPE

    return api.train({**TINY_RECIPE, "output_dir": str(tmp_path / "runs")}, ["trainer.max_epochs=1"]).run_dir


def _strata(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(STRATA), *args], capture_output=True, text=True, cwd=REPO)


def test_resume_on_a_finished_run_refuses_unless_the_overrides_extend_it(finished_run: Path) -> None:
    before = (finished_run / "model.safetensors").read_bytes()
    proc = _strata("train", "--resume", str(finished_run))
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "is finished (1 of 1 epochs" in proc.stderr and "--set trainer.max_epochs=2" in proc.stderr
    assert (finished_run / "model.safetensors").read_bytes() == before  # nothing was overwritten


@pytest.mark.parametrize("override", ["model.widths=[4,4]", "optimizer.lr=0.1", "seed=3", "data.batch_size=16"])
def test_resume_cannot_change_what_is_trained(finished_run: Path, override: str) -> None:
    proc = _strata("train", "--resume", str(finished_run), "--set", "trainer.max_epochs=2", "--set", override)
    assert proc.returncode == 2, proc.stderr
    assert f"'{override.split('=')[0]}' cannot change" in proc.stderr


def test_resume_overrides_are_written_to_config_and_recorded(finished_run: Path) -> None:
    from deepstrata import api

    result = api.train(None, ["trainer.max_epochs=2"], resume=finished_run)
    config = yaml.safe_load((finished_run / "config.yaml").read_text())
    assert config["trainer"]["max_epochs"] == 2  # the re-runnable config says what was run
    info = json.loads((finished_run / "run.json").read_text())
    assert info["status"] == "finished"
    assert [(r["from_epoch"], r["overrides"]) for r in info["resumes"]] == [(1, ["trainer.max_epochs=2"])]
    epochs = [json.loads(line)["epoch"] for line in (finished_run / "metrics.jsonl").read_text().splitlines() if '"scope": "epoch"' in line]
    assert epochs == [1, 2] and result.metrics["test/accuracy"] > 0
