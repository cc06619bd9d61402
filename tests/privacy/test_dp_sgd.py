"""DP-SGD's mechanism, checked against its definition: clipped per-sample gradients, noise of
std sigma * C, Poisson batches, and the epsilon Opacus' accountants give for the run's history."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import nn
from torch.func import functional_call, grad, vmap
from torch.utils.data import TensorDataset

from deepstrata import api
from deepstrata.data.tensor_loader import TensorLoader
from deepstrata.errors import ConfigError, UserError
from deepstrata.privacy.dp_sgd import dp_sgd
from deepstrata.privacy.poisson import PoissonLoader, PoissonSampler, empty_batch_chance, minimum_batch
from deepstrata.training.callbacks.metrics_logger import read_metrics
from deepstrata.training.precision import Precision
from deepstrata.training.sampler import ResumableSampler
from tests.privacy.dp_reference import clipped_sum, dp_gradient

REPO = Path(__file__).resolve().parents[2]
MLP_RECIPE = REPO / "recipes" / "engine_mlp_digits.yaml"
CNN_RECIPE = REPO / "recipes" / "digits_cnn.yaml"
CPU = torch.device("cpu")


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(12, 16), nn.Tanh(), nn.Linear(16, 3))


def _prepared(model: nn.Module, *, sigma: float, clip: float, n: int = 400, batch: int = 64):
    """(strategy, DP optimizer, Poisson loader) for `model` on n random rows, as Trainer.fit prepares them."""
    g = torch.Generator().manual_seed(1)
    data = TensorDataset(torch.randn(n, 12, generator=g), torch.randint(0, 3, (n,), generator=g))
    loader = TensorLoader(data, batch_size=batch, sampler=ResumableSampler(data, seed=0, shuffle=True))
    strategy = dp_sgd(device=CPU, noise_multiplier=sigma, max_grad_norm=clip)
    strategy.prepare_model(model)
    strategy.setup(SimpleNamespace(model=model))
    trainer = SimpleNamespace(accumulate_grad_batches=1, callbacks=[], precision=Precision(), max_steps=None, max_epochs=1)
    optimizer, poisson = strategy.prepare_training(trainer, torch.optim.SGD(model.parameters(), lr=0.1), loader)
    return strategy, optimizer, poisson


def _per_sample(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Every example's gradient by torch.func (not Opacus' hooks), and their global norms."""
    params = {k: v.detach() for k, v in model.named_parameters()}

    def loss(p: dict[str, torch.Tensor], xi: torch.Tensor, yi: torch.Tensor) -> torch.Tensor:
        return nn.functional.cross_entropy(functional_call(model, p, (xi[None],)), yi[None])

    per_sample = vmap(grad(loss), in_dims=(None, 0, 0))(params, x, y)
    return per_sample, torch.sqrt(sum(g.flatten(1).pow(2).sum(1) for g in per_sample.values()))


def _reference_clipped_mean(model: nn.Module, x: torch.Tensor, y: torch.Tensor, clip: float, expected: int) -> dict[str, torch.Tensor]:
    """sum_i g_i * min(1, C / ||g_i||) / expected batch: the definition of DP-SGD's noise-free step."""
    per_sample, norms = _per_sample(model, x, y)
    assert (norms > clip).any() and (norms < clip).any(), "the check needs examples on both sides of the clip norm"
    return clipped_sum(per_sample, clip, expected)


def test_every_per_sample_gradient_is_clipped_to_the_norm() -> None:
    model = _model()
    _, optimizer, loader = _prepared(model, sigma=0.0, clip=1.0)
    x, y = next(iter(loader))
    # The clip norm at the batch's median gradient norm clips about half of the examples.
    optimizer.max_grad_norm = clip = _per_sample(_model(), x, y)[1].median().item()
    expected = _reference_clipped_mean(_model(), x, y, clip, loader.batch_size)  # same init, no hooks
    got = dp_gradient(model, optimizer, x, y)
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=1e-5, atol=1e-7)


def test_the_noise_has_standard_deviation_sigma_times_clip() -> None:
    sigma = 2.0
    model = _model()
    _, optimizer, loader = _prepared(model, sigma=sigma, clip=1.0)
    x, y = next(iter(loader))
    optimizer.max_grad_norm = clip = _per_sample(_model(), x, y)[1].median().item()
    clean = _reference_clipped_mean(_model(), x, y, clip, loader.batch_size)
    torch.manual_seed(123)
    noise = torch.cat([
        torch.cat([(g - clean[k]).flatten() for k, g in dp_gradient(model, optimizer, x, y).items()]) * loader.batch_size
        for _ in range(40)
    ])
    assert noise.numel() > 10_000
    assert noise.std().item() == pytest.approx(sigma * clip, rel=0.03)
    assert abs(noise.mean().item()) < 4 * sigma * clip / noise.numel() ** 0.5


def test_poisson_batches_include_each_example_with_the_sample_rate_and_replay_after_a_resume() -> None:
    sampler = PoissonSampler(2000, 0.05, seed=3, steps=20, batch_size=100)
    sampler.set_epoch(1)
    epoch = list(sampler)
    counts = torch.zeros(2000)
    for index in epoch:
        counts[index] += 1
    sizes = torch.tensor([len(i) for i in epoch], dtype=torch.float)
    assert sizes.mean().item() == pytest.approx(100, rel=0.08) and sizes.std() > 0  # sizes vary, around q * n
    assert counts.mean().item() == pytest.approx(20 * 0.05, rel=0.08)
    sampler.set_position(1, 7 * 100)  # the trainer resumes by samples seen: 7 steps of the expected batch
    assert [i.tolist() for i in sampler] == [i.tolist() for i in epoch[7:]]
    sampler.set_epoch(2)
    assert [i.tolist() for i in sampler] != [i.tolist() for i in epoch]


def test_a_batch_size_that_could_draw_an_empty_batch_is_refused_with_the_size_that_would_not() -> None:
    assert empty_batch_chance(1000, 0.001, 10) == pytest.approx(1 - (1 - 0.999**1000) ** 10)
    data = TensorDataset(torch.zeros(1000, 2), torch.zeros(1000, dtype=torch.long))
    small = TensorLoader(data, batch_size=4, sampler=ResumableSampler(data, seed=0, shuffle=True))
    with pytest.raises(UserError, match=f"at least {minimum_batch(1000, 2500)}"):
        PoissonLoader(small, seed=0, total_steps=2500)


def _train(tmp_path: Path, recipe: Path, strategy: str, *extra: str) -> Path:
    # The MLP recipe clips the batch gradient; DP-SGD clips per example instead.
    overrides = [f"output_dir={tmp_path / 'runs'}", "trainer.progress=off", "trainer.gradient_clip_norm=null", f"trainer.strategy={strategy}", *extra]
    return api.train(str(recipe), overrides).run_dir


@pytest.mark.e2e
@pytest.mark.parametrize("accountant", ["rdp", "prv"])
def test_the_logged_epsilon_is_what_opacus_accountant_gives_for_the_same_history(tmp_path: Path, accountant: str) -> None:
    from opacus.accountants import create_accountant

    run = _train(tmp_path, MLP_RECIPE, f"{{name: dp_sgd, noise_multiplier: 1.3, accountant: {accountant}}}", "trainer.max_epochs=2")
    record = json.loads((run / "run.json").read_text())["strategy"]
    assert record["name"] == "dp_sgd" and record["noise_multiplier"] == 1.3 and record["steps"] == 2 * (1257 // 64)
    epochs = [r for r in read_metrics(run / "metrics.jsonl") if r["scope"] == "epoch"]
    for i, row in enumerate(epochs, start=1):
        direct = create_accountant(accountant)
        for _ in range(i * (1257 // 64)):  # one accountant step per optimizer step, called directly
            direct.step(noise_multiplier=1.3, sample_rate=64 / 1257)
        assert row["train/epsilon"] == pytest.approx(direct.get_epsilon(delta=1e-5), rel=1e-9)
    assert record["epsilon"] == epochs[-1]["train/epsilon"]


@pytest.mark.e2e
def test_a_target_epsilon_is_spent_exactly_by_the_end_of_the_run(tmp_path: Path) -> None:
    # Through torch's DataLoader path (per-sample items and the collate), where the other tests use tensor batches.
    run = _train(tmp_path, MLP_RECIPE, "{name: dp_sgd, target_epsilon: 4.0, delta: 1.0e-4}", "trainer.max_epochs=3", "optimizer.lr=0.01", "data.loader=dataloader")
    record = json.loads((run / "run.json").read_text())["strategy"]
    assert 4.0 - 0.01 <= record["epsilon"] <= 4.0  # Opacus' get_noise_multiplier stops within 0.01 below the target
    assert record["delta"] == 1e-4 and record["target_epsilon"] == 4.0
    assert json.loads((run / "run.json").read_text())["status"] == "finished"
    report = (run / "report.html").read_text()
    assert "Privacy (DP-SGD)" in report and f"{record['epsilon']:.3f}" in report


@pytest.mark.e2e
def test_a_model_with_batchnorm_is_fixed_trained_privately_and_its_run_opens_like_any_other(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from deepstrata.run.run import Run

    result = api.train(str(CNN_RECIPE), [f"output_dir={tmp_path / 'runs'}", "trainer.progress=off", "trainer.max_epochs=5",
                                          "model.widths=[8,16]", "data.batch_size=64", "optimizer.lr=0.01", "trainer.strategy={name: dp_sgd, noise_multiplier: 0.0}"])
    assert "features.1: BatchNorm2d -> GroupNorm" in capsys.readouterr().err
    spec = json.loads((result.run_dir / "model.json").read_text())
    assert spec["replaced_modules"] == "opacus"
    assert json.loads((result.run_dir / "run.json").read_text())["strategy"]["epsilon"] is None  # no noise: no guarantee
    run = Run.open(result.run_dir)
    assert run.evaluate("test")["test/accuracy"] == pytest.approx(result.metrics["test/accuracy"], abs=1e-6)
    assert result.metrics["test/accuracy"] > 0.8  # clipping alone still learns digits
    modules = {type(m).__name__ for m in api.load(result.run_dir).model.modules()}
    assert "GroupNorm" in modules and "BatchNorm2d" not in modules


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("trainer.strategy={name: dp_sgd}", "exactly one of noise_multiplier or target_epsilon"),
        ("trainer.strategy={name: dp_sgd, noise_multiplier: 1.0, target_epsilon: 2.0}", "exactly one of"),
        ("trainer.strategy={name: dp_sgd, noise_multiplier: 1.0, clip: 1.0}", "clip"),
        ("trainer.strategy={name: dp_sgd, noise_multiplier: 1.0, delta: 2.0}", "delta must be in"),
    ],
)
def test_bad_privacy_settings_fail_before_training_with_what_to_set(tmp_path: Path, override: str, message: str) -> None:
    with pytest.raises((UserError, ConfigError), match=message):
        _train(tmp_path, MLP_RECIPE, override.split("=", 1)[1])


@pytest.mark.parametrize(
    ("extra", "message"),
    [("trainer.accumulate_grad_batches=2", "accumulate_grad_batches=1"), ("trainer.gradient_clip_norm=1.0", "max_grad_norm")],
)
def test_loop_options_that_would_break_the_guarantee_are_refused(tmp_path: Path, extra: str, message: str) -> None:
    with pytest.raises(UserError, match=message):
        _train(tmp_path, MLP_RECIPE, "{name: dp_sgd, noise_multiplier: 1.0}", extra, "trainer.max_epochs=1")
