"""FedAvg in one process: a round is the definition's weighted mean; FedProx, secure aggregation and
DP-FedAvg do what they claim; a run killed mid-round resumes to the same weights."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import load_file

from deepstrata import api
from deepstrata.cli.main import main as cli_main
from deepstrata.config import load_recipe
from deepstrata.errors import ConfigError, UserError
from deepstrata.experiment import build_experiment
from deepstrata.federated.aggregation import client_contribution, new_global
from deepstrata.federated.fedavg import fedavg
from deepstrata.training.callbacks.metrics_logger import read_metrics
from tests.training.engine_helpers import train_until_sigkill

REPO = Path(__file__).resolve().parents[2]
RECIPE = str(REPO / "recipes" / "digits_cnn.yaml")


def _overrides(tmp_path: Path, strategy: str, *, rounds: int = 1, extra: tuple[str, ...] = ()) -> list[str]:
    return [
        f"output_dir={tmp_path / 'runs'}", f"trainer.max_epochs={rounds}", "trainer.progress=off", "trainer.num_threads=1",
        "model.widths=[8,16]", "model.dropout=0.0", "data.batch_size=10", "~scheduler", "trainer.test_weights=last",
        "optimizer={name: sgd, lr: 0.05}", f"trainer.strategy={strategy}", *extra,
    ]


def _flat(state: dict[str, torch.Tensor]) -> torch.Tensor:
    return torch.cat([state[k].reshape(-1).double() for k in sorted(state) if state[k].is_floating_point()])


def test_a_round_is_the_examples_weighted_mean_of_the_clients_local_sgd(tmp_path: Path) -> None:
    strategy = "{name: fedavg, clients: 3, fraction: 1.0, local_epochs: 2, split: {name: dirichlet, alpha: 0.5}}"
    overrides = _overrides(tmp_path, strategy)
    run = api.train(RECIPE, overrides).run_dir
    trained = _flat(load_file(run / "model.safetensors"))

    # The definition, written out: each client starts from the initial model, runs E epochs of
    # plain SGD on its own rows, and the server takes the mean of the models weighted by n_k.
    exp = build_experiment(load_recipe(RECIPE, overrides))
    initial = {k: v.clone() for k, v in exp.model.state_dict().items()}
    plan = fedavg(device=torch.device("cpu"), clients=3, fraction=1.0, local_epochs=2, split={"name": "dirichlet", "alpha": 0.5})
    plan.setup(exp.task)
    plan.prepare_training(SimpleNamespace(accumulate_grad_batches=1), None, exp.loader("train"))
    total, weighted = 0, torch.zeros_like(trained)
    for k, loader in plan.client_data.items():
        exp.model.load_state_dict(initial)
        optimizer = torch.optim.SGD(exp.model.parameters(), lr=0.05)
        exp.task.train()
        for epoch in range(2):
            loader.sampler.set_position(epoch, 0)
            for batch in loader:
                optimizer.zero_grad()
                exp.task.training_step(batch).loss.backward()
                optimizer.step()
        n = len(loader.dataset)
        weighted += n * (_flat(exp.model.state_dict()) - _flat(initial))
        total += n
    expected = _flat(initial) + weighted / total
    assert total == 1257 and len(set(plan.sizes)) == 3  # unequal clients: the weights matter
    assert torch.allclose(trained, expected, atol=1e-6), float((trained - expected).abs().max())

    info = json.loads((run / "run.json").read_text())["strategy"]
    assert info["rounds"] == 1 and info["mode"] == "simulation" and info["split"] == {"name": "dirichlet", "alpha": 0.5}
    epoch = [r for r in read_metrics(run / "metrics.jsonl") if r["scope"] == "epoch"][0]
    assert epoch["federated/clients"] == 3.0 and "val/accuracy" in epoch


def test_secure_aggregation_changes_nothing_but_what_the_server_sees(tmp_path: Path) -> None:
    base = "{name: fedavg, clients: 6, fraction: 0.5, local_epochs: 1, split: shards"
    plain = api.train(RECIPE, _overrides(tmp_path, base + "}", rounds=2)).run_dir
    masked = api.train(RECIPE, _overrides(tmp_path, base + ", secure_aggregation: true}", rounds=2)).run_dir
    a, b = _flat(load_file(plain / "model.safetensors")), _flat(load_file(masked / "model.safetensors"))
    assert float((a - b).abs().max()) < 1e-6  # the fixed-point encoding's 2^-24 step, nothing more


def test_fedprox_adds_the_proximal_term_and_keeps_clients_near_the_global_model(tmp_path: Path) -> None:
    from tests.training.engine_helpers import make_data, make_loader, make_task

    task = make_task()
    strategy = fedavg(device=torch.device("cpu"), clients=2, fraction=1.0, proximal_mu=0.5)
    strategy.setup(task)
    strategy.prepare_training(SimpleNamespace(accumulate_grad_batches=1), None, make_loader(make_data(40), 8))
    from deepstrata.federated.aggregation import flatten

    anchor = flatten(task.model, strategy.keys)
    strategy._set_anchor(anchor)
    with torch.no_grad():
        for p in task.model.parameters():
            p.add_(0.1)
    batch = next(iter(make_loader(make_data(40), 8)))
    plain = float(task.training_step(batch).loss.detach())
    proximal = float(strategy.training_step(task, batch).loss.detach())
    squared = float(((flatten(task.model, strategy.keys) - anchor) ** 2).sum())
    assert proximal - plain == pytest.approx(0.5 * 0.5 * squared, rel=1e-5)

    def drift(mu: float) -> float:  # the clients' mean ||w_k - w_global|| after their local epochs
        spec = f"{{name: fedavg, clients: 4, fraction: 1.0, local_epochs: 3, split: shards, proximal_mu: {mu}}}"
        run = api.train(RECIPE, _overrides(tmp_path, spec, extra=("model.norm=none",))).run_dir
        return [r for r in read_metrics(run / "metrics.jsonl") if r["scope"] == "epoch"][0]["federated/client_drift"]

    assert drift(1.0) < 0.8 * drift(0.0)


def test_dp_fedavg_clips_adds_calibrated_noise_and_accounts_epsilon(tmp_path: Path) -> None:
    update = torch.full((100,), 1.0, dtype=torch.float64)  # norm 10
    clipped = client_contribution(update, examples=50, loss=0.0, clip_norm=2.0)
    assert float(clipped.weighted_update.norm()) == pytest.approx(2.0) and clipped.weight == 1.0
    small = client_contribution(update * 0.01, examples=50, loss=0.0, clip_norm=2.0)
    assert torch.equal(small.weighted_update, update * 0.01)  # under the bound: untouched

    # Noise on the sum: standard deviation z * S, divided by the expected number of clients.
    zero = torch.zeros(200_000, dtype=torch.float64)
    noisy = new_global(zero, zero, 0.0, noise_std=1.5 * 2.0, expected_clients=4.0, generator=torch.Generator().manual_seed(0))
    assert float(noisy.std()) == pytest.approx(1.5 * 2.0 / 4.0, rel=0.01)

    spec = "{name: fedavg, clients: 10, fraction: 0.3, local_epochs: 1, client_clip_norm: 1.0, noise_multiplier: 1.2}"
    run = api.train(RECIPE, _overrides(tmp_path, spec, rounds=3)).run_dir
    from opacus.accountants import RDPAccountant

    accountant = RDPAccountant()
    for _ in range(3):
        accountant.step(noise_multiplier=1.2, sample_rate=0.3)
    info = json.loads((run / "run.json").read_text())["strategy"]
    assert info["dp"]["epsilon"] == pytest.approx(accountant.get_epsilon(delta=1e-5), rel=1e-9)
    epsilons = [r["train/epsilon"] for r in read_metrics(run / "metrics.jsonl") if r["scope"] == "epoch"]
    assert len(epsilons) == 3 and epsilons == sorted(epsilons) and epsilons[-1] == info["dp"]["epsilon"]


@pytest.mark.e2e
def test_sigkill_mid_round_then_resume_gives_the_same_weights(tmp_path: Path) -> None:
    spec = "{name: fedavg, clients: 6, fraction: 0.5, local_epochs: 2, split: shards, secure_aggregation: true, proximal_mu: 0.1}"
    overrides = _overrides(tmp_path, spec, rounds=2, extra=("trainer.checkpoint_every_n_steps=20",))
    reference = api.train(RECIPE, overrides).run_dir
    steps = [r["step"] for r in read_metrics(reference / "metrics.jsonl") if r["scope"] == "epoch"]
    # 3 clients x 2 epochs x ~21 batches of 10 per round; stop well inside round 2.
    kill_at = steps[0] + 70  # the last checkpoint before it is 54 batches in: client 1 of 3 summed, client 2 mid-way
    train_until_sigkill(RECIPE, overrides, step=kill_at, cwd=tmp_path)
    run_dir = next(p for p in (tmp_path / "runs" / "digits_cnn").iterdir() if p != reference)
    saved = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)
    assert saved["trainer"]["epoch"] == 1 and saved["strategy"]["pending"]["done"]  # mid-round, a client already summed

    assert cli_main(["train", "--resume", str(run_dir)]) == 0
    ref, resumed = load_file(reference / "model.safetensors"), load_file(run_dir / "model.safetensors")
    for name in ref:
        assert torch.equal(ref[name], resumed[name]), name


def test_settings_that_cannot_work_are_refused_with_what_to_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(UserError, match="unknown client_split 'dirichlett'; did you mean dirichlet"):
        fedavg(device=torch.device("cpu"), split="dirichlett")
    with pytest.raises(ConfigError, match="trainer.strategy.split.alhpa: unknown key; did you mean alpha"):
        fedavg(device=torch.device("cpu"), split={"name": "dirichlet", "alhpa": 0.1})
    with pytest.raises(UserError, match="client_clip_norm"):
        fedavg(device=torch.device("cpu"), noise_multiplier=1.0)
    with pytest.raises(UserError, match=r"fraction"):
        fedavg(device=torch.device("cpu"), fraction=0.0)
    with pytest.raises(UserError, match="accumulate_grad_batches=1"):
        api.train(RECIPE, _overrides(tmp_path, "{name: fedavg, clients: 4}", extra=("trainer.accumulate_grad_batches=2",)))
    monkeypatch.setenv("WORLD_SIZE", "3")
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(UserError, match="clients=2 for 3 ranks"):
        fedavg(device=torch.device("cpu"), clients=100)
