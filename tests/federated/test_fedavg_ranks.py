"""FedAvg with clients as torchrun ranks: the same rounds as the simulation, and a killed client is dropped.

Both launch torchrun, so they run in the serial `distributed` step of `make test`.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from deepstrata import api
from deepstrata.training.callbacks.metrics_logger import read_metrics

REPO = Path(__file__).resolve().parents[2]
RECIPE = str(REPO / "recipes" / "digits_cnn.yaml")
pytestmark = [pytest.mark.e2e, pytest.mark.distributed]


def _overrides(tmp_path: Path, strategy: str, rounds: int) -> list[str]:
    return [
        f"output_dir={tmp_path / 'runs'}", f"trainer.max_epochs={rounds}", "trainer.progress=off", "trainer.num_threads=1",
        "model.widths=[8,16]", "model.dropout=0.0", "data.batch_size=10", "~scheduler", "trainer.test_weights=last",
        "optimizer={name: sgd, lr: 0.05}", f"trainer.strategy={strategy}",
    ]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _torchrun(nodes: int, node_rank: int, nproc: int, port: int, overrides: list[str], cwd: Path) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nnodes={nodes}", f"--node-rank={node_rank}", f"--nproc-per-node={nproc}",
           "--master-addr=127.0.0.1", f"--master-port={port}", "-m", "deepstrata.cli.main", "train", RECIPE]
    cmd += [arg for o in overrides for arg in ("--set", o)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            text=True, start_new_session=True)


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _flat(state: dict[str, torch.Tensor]) -> torch.Tensor:
    return torch.cat([state[k].reshape(-1).double() for k in sorted(state) if state[k].is_floating_point()])


def test_client_ranks_with_secure_aggregation_give_the_simulations_model(tmp_path: Path) -> None:
    spec = "{name: fedavg, clients: 2, fraction: 1.0, local_epochs: 1, split: shards, secure_aggregation: true}"
    overrides = _overrides(tmp_path, spec, rounds=2)
    launch = _torchrun(1, 0, 3, _free_port(), overrides, tmp_path)
    try:
        out, _ = launch.communicate(timeout=300)
    finally:
        _stop(launch)
    assert launch.returncode == 0, out[-3000:]
    ranked = next((tmp_path / "runs" / "digits_cnn").iterdir())
    simulated = api.train(RECIPE, overrides).run_dir
    a, b = _flat(load_file(ranked / "model.safetensors")), _flat(load_file(simulated / "model.safetensors"))
    assert float((a - b).abs().max()) < 1e-6  # one aggregation, two transports
    info = json.loads((ranked / "run.json").read_text())["strategy"]
    assert info["mode"] == "ranks" and info["rounds"] == 2 and info["dropped"] == []


def test_a_killed_client_rank_is_dropped_and_the_run_finishes(tmp_path: Path) -> None:
    spec = "{name: fedavg, clients: 2, fraction: 1.0, local_epochs: 1, split: iid, client_timeout_s: 5}"
    overrides = _overrides(tmp_path, spec, rounds=4)
    port = _free_port()
    # Two "machines": the server and client 0 on node 0, client 1 alone on node 1, as federated
    # clients are. torchrun's agent would stop every rank of its node when one dies.
    server = _torchrun(2, 0, 2, port, overrides, tmp_path)
    client = _torchrun(2, 1, 1, port, overrides, tmp_path)
    seen: list[str] = []
    marker = threading.Event()

    def watch() -> None:
        assert client.stdout is not None
        for line in client.stdout:
            seen.append(line)
            if "client 1 trains round 1" in line:
                marker.set()

    threading.Thread(target=watch, daemon=True).start()
    try:
        assert marker.wait(240), "".join(seen)[-3000:]
        workers = _children(client.pid)
        assert len(workers) == 1
        os.kill(workers[0], signal.SIGKILL)  # client 1 dies mid-round 1
        deadline = time.monotonic() + 240
        runs = tmp_path / "runs" / "digits_cnn"
        info: dict = {}
        while time.monotonic() < deadline:  # the server writes run.json last, once the run is whole
            done = [p / "run.json" for p in runs.glob("*") if (p / "report.html").exists()] if runs.exists() else []
            if done:
                info = json.loads(done[0].read_text())
                break
            assert server.poll() is None or server.returncode == 0
            time.sleep(0.5)
        assert info.get("status") == "finished", "server did not finish"
    finally:
        # The run is written; node 0's torchrun agent would now wait (its exit barrier, 300 s) for
        # node 1's agent, which left when its worker died.
        _stop(server)
        _stop(client)
    strategy = info["strategy"]
    assert strategy["rounds"] == 4
    assert strategy["dropped"] == [{"round": r, "client": 1} for r in (1, 2, 3)]
    epochs = [r for r in read_metrics(done[0].parent / "metrics.jsonl") if r["scope"] == "epoch"]
    assert [e["federated/clients"] for e in epochs] == [2.0, 1.0, 1.0, 1.0]
    assert epochs[-1]["val/accuracy"] > 0.5  # the rounds went on with client 0 and the model kept learning
    assert "test/accuracy" in next(r for r in read_metrics(done[0].parent / "metrics.jsonl") if r["scope"] == "test")
