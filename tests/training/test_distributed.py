"""Data-parallel training: torchrun with 2 CPU ranks (gloo) equals one process with the same global batch."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

REPO = Path(__file__).resolve().parents[2]
RECIPE = REPO / "recipes" / "engine_mlp_digits.yaml"

SCRIPT = """
import os, sys
from safetensors.torch import save_file
from deepstrata import api
from deepstrata.training.callbacks.base import Callback

class SaveWeights(Callback):
    def on_fit_end(self, trainer):
        rank = os.environ.get("RANK", "single")
        state = {k: v.detach().contiguous() for k, v in trainer.task.model.state_dict().items()}
        save_file(state, os.path.join(sys.argv[1], f"weights_{rank}.safetensors"))

api.train(sys.argv[2], sys.argv[3:], extra_callbacks=[SaveWeights()])
"""


def _run(cmd: list[str], *, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run a launch in its own session; on timeout kill the whole group (torchrun's ranks too)."""
    import signal

    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"launch timed out after 300 s: {' '.join(cmd)}\n{err[-3000:]}")
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


# Runs in its own serial pytest step after the parallel run (see Makefile): two gloo ranks
# beside another busy xdist worker on two cores hung once in CI-like runs.
@pytest.mark.e2e
@pytest.mark.distributed
def test_two_cpu_ranks_match_each_other_and_a_single_process(tmp_path: Path) -> None:
    script = tmp_path / "train_and_save.py"
    script.write_text(SCRIPT)
    # Dropout off: two ranks draw their half-batch masks from the same seed, one process draws one mask.
    overrides = [f"output_dir={tmp_path / 'runs'}", "trainer.max_epochs=1", "model.dropout=0.0"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(script), str(tmp_path), str(RECIPE)]
    ddp = _run(launch + overrides, cwd=tmp_path, env=env)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    single = _run([sys.executable, str(script), str(tmp_path), str(RECIPE), *overrides], cwd=tmp_path, env=env)
    assert single.returncode == 0, single.stderr[-3000:]

    rank0, rank1 = load_file(tmp_path / "weights_0.safetensors"), load_file(tmp_path / "weights_1.safetensors")
    one = load_file(tmp_path / "weights_single.safetensors")
    for name in one:
        assert torch.equal(rank0[name], rank1[name]), name  # DDP keeps the replicas identical
        torch.testing.assert_close(rank0[name], one[name], rtol=1e-4, atol=1e-5)  # same global batches

    from deepstrata.training.callbacks.metrics_logger import read_metrics

    runs = sorted((tmp_path / "runs" / "engine_mlp_digits").iterdir())
    assert len(runs) == 2  # one per launch: under torchrun only rank 0 made a run directory
    epochs = []
    for run in runs:
        records = read_metrics(run / "metrics.jsonl")
        steps = [r["step"] for r in records if r["scope"] == "step"]
        assert steps == list(range(1, 21))  # 20 global steps, logged once (rank 0 only)
        assert (run / "model.safetensors").exists() and (run / "report.html").exists()
        epochs.append(next(r for r in records if r["scope"] == "epoch"))
    # Validation metrics are reduced across ranks: each rank saw half of the 180 validation
    # images, and the reduced values equal the single process's over all of them.
    for key in ("val/loss", "val/accuracy", "train/loss"):
        assert epochs[0][key] == pytest.approx(epochs[1][key], rel=1e-4), key
