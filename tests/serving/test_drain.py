"""SIGTERM drains `strata serve`: queued requests are answered, new connections refused, exit code 0."""

from __future__ import annotations

import concurrent.futures
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch

from deepstrata import api
from deepstrata.run.run import Run

pytestmark = [pytest.mark.e2e]

RECIPE = {
    "name": "drain_mlp",
    "seed": 0,
    "data": {"name": "digits", "batch_size": 32},
    "model": {"name": "mlp", "in_features": 64, "num_classes": 10, "hidden": [16]},
    "trainer": {"max_epochs": 1, "max_steps": 2, "progress": "off", "num_threads": 1},
}


def test_sigterm_answers_what_is_queued_refuses_new_work_and_exits_0(tmp_path: Path) -> None:
    run_dir = api.train({**RECIPE, "output_dir": str(tmp_path / "runs")}).run_dir
    strata = Path(sys.executable).with_name("strata")
    # A long queue delay keeps the requests waiting in the batcher when SIGTERM arrives.
    cmd = [str(strata), "serve", str(run_dir), "--port", "0", "--max-queue-delay-ms", "1500", "--max-batch-size", "64", "--drain-timeout-s", "20", "--no-access-log"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        line = proc.stdout.readline()
        match = re.search(r"http://127\.0\.0\.1:(\d+)/v2", line)
        assert match, f"no URL in {line!r}; stderr: {proc.stderr.read() if proc.poll() is not None else ''}"
        url = f"http://127.0.0.1:{match.group(1)}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/v2/health/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        x = np.random.default_rng(0).random((4, 1, 8, 8), dtype=np.float32)  # the MLP flattens digits itself
        with torch.no_grad():
            expected = Run.open(run_dir).model().eval()(torch.from_numpy(x)).numpy()

        def ask(i: int) -> np.ndarray:
            body = {"inputs": [{"name": "x", "shape": [1, 1, 8, 8], "datatype": "FP32", "data": x[i].ravel().tolist()}]}
            reply = httpx.post(f"{url}/v2/models/drain_mlp/infer", json=body, timeout=30)
            assert reply.status_code == 200, reply.text
            return np.array(reply.json()["outputs"][0]["data"], np.float32)

        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            futures = [pool.submit(ask, i) for i in range(4)]
            time.sleep(0.5)  # all four are queued, waiting for the batch to fill or the delay to pass
            sent = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            time.sleep(0.4)
            with pytest.raises(httpx.TransportError):  # the listening socket is closed: new work is refused
                httpx.get(f"{url}/v2/health/live", timeout=2)
            answers = [f.result(timeout=30) for f in futures]
        for i, got in enumerate(answers):
            np.testing.assert_allclose(got, expected[i].ravel(), atol=1e-5)
        assert proc.wait(timeout=25) == 0
        assert time.monotonic() - sent < 20
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
