"""`trainer.num_threads: auto` (training/threads.py) and the CLI's OpenMP wait policy.

Timing belongs to benchmarks/speed.py; these tests pin the rules with measurements passed in,
and check that the probe leaves no trace in the run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from deepstrata import api
from deepstrata.config import load_recipe
from deepstrata.experiment import build_experiment
from deepstrata.training import threads
from deepstrata.training.threads import AUTO, choose_threads, step_timer, use_threads


class Calls:
    """A step_time stand-in: seconds per step by thread count, and which counts were asked for."""

    def __init__(self, seconds: dict[int, float]):
        self.seconds, self.asked = seconds, []

    def __call__(self, n: int) -> float:
        self.asked.append(n)
        return self.seconds[n]


def test_an_int_is_used_as_given_and_null_leaves_torch_alone() -> None:
    assert choose_threads(3, cores=2).threads == 3
    none = choose_threads(None, cores=2)
    assert none.threads == torch.get_num_threads() and none.requested is None


def test_auto_obeys_omp_num_threads_when_set() -> None:
    step = Calls({1: 1.0, 2: 0.1})
    choice = choose_threads(AUTO, cores=2, step_time=step, environ={"OMP_NUM_THREADS": "1"})
    assert choice.threads == 1 and step.asked == [] and "OMP_NUM_THREADS=1" in choice.reason


def test_a_core_busy_elsewhere_is_not_used_and_not_timed() -> None:
    step = Calls({1: 0.010, 2: 0.006})
    choice = choose_threads(AUTO, cores=2, busy=1.0, step_time=step, environ={})
    assert choice.threads == 1 and step.asked == []
    assert "1.0 of 2 cores busy" in choice.reason


def test_free_cores_are_the_usable_ones_less_the_busy_ones_rounded() -> None:
    step = Calls({1: 0.030, 2: 0.016, 3: 0.011})
    choice = choose_threads(AUTO, cores=4, busy=1.3, step_time=step, environ={})
    assert sorted(step.asked) == [1, 2, 3]  # 4 - 1.3 rounds to 3 free cores
    assert choice.threads == 3
    assert choose_threads(AUTO, cores=4, busy=9.0, environ={}).threads == 1  # never fewer than one


def test_the_fewest_threads_within_ten_percent_of_the_fastest_win() -> None:
    # A small model: two threads are 5% faster, not worth a second core.
    assert choose_threads(AUTO, cores=2, step_time=Calls({1: 0.0100, 2: 0.0095}), environ={}).threads == 1
    # A model that parallelises: 30% faster on two.
    fast = choose_threads(AUTO, cores=2, step_time=Calls({1: 0.010, 2: 0.007}), environ={})
    assert fast.threads == 2 and fast.step_ms == {2: pytest.approx(7.0), 1: pytest.approx(10.0)}
    # Two threads slower than one (thread hand-off dominates a tiny step).
    assert choose_threads(AUTO, cores=2, step_time=Calls({1: 0.002, 2: 0.003}), environ={}).threads == 1


def test_a_large_step_uses_every_free_core_without_timing_the_others() -> None:
    step = Calls({4: 0.6, 1: 2.0})
    choice = choose_threads(AUTO, cores=4, step_time=step, environ={})
    assert choice.threads == 4 and step.asked == [4]


def test_without_a_step_to_time_auto_takes_the_free_cores() -> None:
    assert choose_threads(AUTO, cores=2, busy=0.2, environ={}).threads == 2


def test_busy_cores_reads_other_processes_time_from_proc_stat(monkeypatch: pytest.MonkeyPatch) -> None:
    # Two cores over the interval: cpu0 fully busy, cpu1 a quarter busy; this process used 0.25 of a core.
    samples = iter([{"cpu0": (0, 100), "cpu1": (0, 100)}, {"cpu0": (0, 200), "cpu1": (75, 200)}])
    monkeypatch.setattr(threads, "_cpu_times", lambda: next(samples))
    monkeypatch.setattr(threads.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    clock = iter([10.0, 10.1])
    own = iter([1.0, 1.025])
    monkeypatch.setattr(threads.time, "perf_counter", lambda: next(clock))
    monkeypatch.setattr(threads.time, "process_time", lambda: next(own))
    monkeypatch.setattr(threads.time, "sleep", lambda s: None)
    assert threads.busy_cores() == pytest.approx(1.0 + 0.25 - 0.25)


def test_busy_cores_without_proc_is_zero(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(threads, "_cpu_times", lambda: None)
    assert threads.busy_cores() == 0.0


def test_busy_cores_on_this_machine_is_a_count_of_cores() -> None:
    assert 0.0 <= threads.busy_cores(0.05) <= threads.usable_cores() + 0.5


def tiny_experiment(tiny_recipe: dict):
    tiny_recipe["model"]["dropout"] = 0.5  # dropout and BatchNorm: state the probe must not touch
    tiny_recipe["model"]["norm"] = "batch"
    return build_experiment(load_recipe(tiny_recipe))


def test_the_probe_leaves_no_trace_in_weights_buffers_gradients_rng_or_mode(tiny_recipe: dict) -> None:
    exp = tiny_experiment(tiny_recipe)
    before = {k: v.clone() for k, v in exp.task.state_dict().items()}
    rng = torch.get_rng_state()
    exp.task.train()
    seconds = step_timer(exp.task, exp.probe_batch(), repeats=2)(1)
    assert seconds > 0
    after = exp.task.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # BatchNorm running stats included
    assert all(p.grad is None for p in exp.task.parameters())
    assert torch.equal(torch.get_rng_state(), rng)
    assert exp.task.training


def test_the_probe_batch_is_the_first_training_batch_unaugmented(tiny_recipe: dict) -> None:
    exp = build_experiment(load_recipe(tiny_recipe))
    x, y = exp.probe_batch()
    first_x, first_y = exp.data.train[0]
    assert x.shape[0] == tiny_recipe["data"]["batch_size"] and torch.equal(x[0], first_x) and int(y[0]) == int(first_y)


def test_use_threads_sets_torch_and_a_resumed_run_keeps_its_count(tiny_recipe: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    previous = torch.get_num_threads()
    try:
        exp = tiny_experiment(tiny_recipe)
        choice = use_threads(AUTO, exp)
        assert 1 <= choice.threads <= threads.usable_cores()
        assert torch.get_num_threads() == choice.threads
        assert choice.step_ms or choice.threads == 1  # timed unless only one core was free
        resumed = use_threads(AUTO, exp, previous=3)
        assert resumed.threads == 3 and torch.get_num_threads() == 3 and "resumed" in resumed.reason
        assert use_threads(2, exp).threads == 2
    finally:
        torch.set_num_threads(previous)


def test_a_step_that_fails_is_left_to_the_setup_check(tiny_recipe: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(threads, "busy_cores", lambda interval=0.1: 0.0)
    monkeypatch.setattr(threads, "usable_cores", lambda: 2)
    exp = build_experiment(load_recipe(tiny_recipe))
    monkeypatch.setattr(type(exp.task), "shared_step", lambda self, batch: (_ for _ in ()).throw(RuntimeError("shape mismatch")))
    previous = torch.get_num_threads()
    try:
        choice = use_threads(AUTO, exp)
    finally:
        torch.set_num_threads(previous)
    assert choice.threads == 2 and choice.step_ms == {} and "no model step was timed" in choice.reason


def test_auto_is_the_default_and_the_choice_is_in_run_json(tiny_recipe: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert load_recipe(tiny_recipe).trainer.num_threads == AUTO
    tiny_recipe["trainer"]["max_epochs"] = 1
    before = torch.get_num_threads()
    run_dir = api.train(tiny_recipe).run_dir
    assert torch.get_num_threads() == before  # the caller's setting is restored
    info = json.loads((Path(run_dir) / "run.json").read_text())
    assert info["threads"]["requested"] == AUTO and 1 <= info["threads"]["threads"] <= threads.usable_cores()
    assert info["environment"]["torch_threads"] == info["threads"]["threads"]
    last = torch.load(Path(run_dir) / "checkpoints" / "last.pt", weights_only=True)
    assert last["threads"] == info["threads"]["threads"]


@pytest.mark.parametrize("user_policy", [None, "ACTIVE"])
def test_the_cli_sets_a_passive_wait_policy_unless_the_user_chose_one(tiny_recipe: dict, tmp_path: Path, user_policy: str | None) -> None:
    tiny_recipe["trainer"].update(max_epochs=1, max_steps=2, progress="lines")
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(yaml.safe_dump(tiny_recipe))
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS")}
    if user_policy:
        env["OMP_WAIT_POLICY"] = user_policy
    strata = Path(sys.executable).with_name("strata")
    proc = subprocess.run([str(strata), "train", str(recipe), "--json"], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stderr.count("threads: ") == 1  # logged once
    run_dir = Path(json.loads(proc.stdout.strip().splitlines()[-1])["run_dir"])
    info = json.loads((run_dir / "run.json").read_text())
    assert info["environment"]["omp_wait_policy"] == (user_policy or "PASSIVE")


def test_the_wait_policy_is_set_before_torch_is_imported() -> None:
    code = (
        "import os, sys\n"
        "from deepstrata.cli.main import main\n"
        "main(['--version'])\n"
        "assert 'torch' not in sys.modules, 'torch imported before the CLI could set the wait policy'\n"
        "print(os.environ['OMP_WAIT_POLICY'])\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[-1] == "PASSIVE"


def test_deterministic_sets_and_restores_both_flags_without_loading_the_compiler() -> None:
    import subprocess
    import sys

    code = (
        "import sys, torch\n"
        "from deepstrata.training.environment import deterministic\n"
        "loaded = 'torch._inductor' in sys.modules\n"
        "with deterministic(True):\n"
        "    inside = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled())\n"
        "after = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled())\n"
        "print(loaded, 'torch._inductor' in sys.modules, inside, after)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split(maxsplit=1)
    assert out[0] == "False", "torch itself must not load its compiler on import, or this test proves nothing"
    assert out[1].strip() == "False (True, True) (False, False)"
