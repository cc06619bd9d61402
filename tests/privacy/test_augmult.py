"""Augmentation multiplicity (De et al. 2022) under DP-SGD: each example's K augmented copies
give one gradient, their mean, clipped once; epsilon is that of K = 1; K = 1 is plain DP-SGD."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from opacus.optimizers import DPOptimizer
from safetensors.torch import load_file
from torch import nn
from torch.func import functional_call, grad, vmap
from torch.utils.data import TensorDataset

from deepstrata import api
from deepstrata.data.tensor_loader import TensorLoader
from deepstrata.errors import UserError
from deepstrata.privacy.augmult import AugmultDPOptimizer, average_copies
from deepstrata.privacy.dp_sgd import dp_sgd
from deepstrata.training.precision import Precision
from deepstrata.training.sampler import ResumableSampler
from deepstrata.transforms.image import random_crop
from deepstrata.transforms.pipeline import AugmentCollate
from tests.privacy.dp_reference import clipped_sum, dp_gradient

REPO = Path(__file__).resolve().parents[2]
MLP_RECIPE = REPO / "recipes" / "engine_mlp_digits.yaml"
CPU = torch.device("cpu")
K = 4


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.Tanh(), nn.Linear(16, 3))


def _prepared(model: nn.Module, *, augmult: int, sigma: float = 0.0, n: int = 300, batch: int = 32):
    """(DP optimizer, Poisson loader) on n random 1x8x8 images shifted by up to 1 pixel, as Trainer.fit prepares them."""
    g = torch.Generator().manual_seed(1)
    data = TensorDataset(torch.rand(n, 1, 8, 8, generator=g), torch.randint(0, 3, (n,), generator=g))
    augment = AugmentCollate([random_crop(padding=1)], seed=0)
    loader = TensorLoader(data, batch_size=batch, sampler=ResumableSampler(data, seed=0, shuffle=True), augment=augment)
    strategy = dp_sgd(device=CPU, noise_multiplier=sigma, max_grad_norm=1.0, augmult=augmult)
    strategy.prepare_model(model)
    strategy.setup(SimpleNamespace(model=model))
    trainer = SimpleNamespace(accumulate_grad_batches=1, callbacks=[], precision=Precision(), max_steps=None, max_epochs=1)
    return strategy.prepare_training(trainer, torch.optim.SGD(model.parameters(), lr=0.1), loader)


def _per_row(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every row's own gradient by torch.func (not Opacus' hooks): {name: (rows, *shape)}."""
    params = {k: v.detach() for k, v in model.named_parameters()}

    def loss(p: dict[str, torch.Tensor], xi: torch.Tensor, yi: torch.Tensor) -> torch.Tensor:
        return nn.functional.cross_entropy(functional_call(model, p, (xi[None],)), yi[None])

    return vmap(grad(loss), in_dims=(None, 0, 0))(params, x, y)


def test_a_poisson_batch_holds_each_drawn_example_k_times_in_a_row_each_copy_augmented_anew() -> None:
    _, loader = _prepared(_model(), augmult=K)
    index = loader.sampler.draw(0, 0)
    x, y = next(iter(loader))
    assert x.shape == (len(index) * K, 1, 8, 8)
    assert torch.equal(y, loader.dataset.tensors[1][index].repeat_interleave(K))
    copies = x.reshape(len(index), K, -1)
    assert (copies[:, 1:] != copies[:, :1]).any(-1).float().mean() > 0.5  # most copies are shifted differently
    assert torch.equal(x, next(iter(loader))[0])  # seeded by the draw: the same batch again after a resume


def test_the_clipped_gradient_of_an_example_is_the_clipped_mean_of_its_copies_gradients() -> None:
    model = _model()
    optimizer, loader = _prepared(model, augmult=K)
    assert isinstance(optimizer, AugmultDPOptimizer) and optimizer.expected_batch_size == loader.batch_size
    x, y = next(iter(loader))
    per_copy = _per_row(_model(), x, y)  # same init, no hooks
    per_example = {k: g.reshape(-1, K, *g.shape[1:]).mean(1) for k, g in per_copy.items()}  # by hand: the mean of K copies
    norms = torch.sqrt(sum(g.flatten(1).pow(2).sum(1) for g in per_example.values()))
    optimizer.max_grad_norm = clip = norms.median().item()  # clips about half of the examples
    assert (norms > clip).any() and (norms < clip).any()
    expected = clipped_sum(per_example, clip, loader.batch_size)
    got = dp_gradient(model, optimizer, x, y)
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=1e-5, atol=1e-7)
    # Clipping every copy on its own (K gradients per person) is a different, and wrong, step.
    per_copy_clipped = clipped_sum(per_copy, clip, loader.batch_size * K)
    assert not torch.allclose(per_copy_clipped["3.weight"], expected["3.weight"], rtol=1e-3, atol=1e-6)


def test_the_averaging_of_one_copy_is_plain_dp_sgd_bit_for_bit() -> None:
    x, y = torch.randn(20, 1, 8, 8), torch.randint(0, 3, (20,))
    grads = []
    for cls in (DPOptimizer, AugmultDPOptimizer):
        model = _model()
        optimizer, _ = _prepared(model, augmult=1)
        kwargs = {"multiplicity": 1} if cls is AugmultDPOptimizer else {}
        optimizer = cls(optimizer.original_optimizer, noise_multiplier=0.0, max_grad_norm=0.05, expected_batch_size=20, **kwargs)
        grads.append(dp_gradient(model, optimizer, x, y))
    for name in grads[0]:
        assert torch.equal(grads[0][name], grads[1][name]), name
    g = torch.randn(6, 3, 2)
    assert torch.equal(average_copies(g, 1), g)
    assert torch.equal(average_copies(g, 3), torch.stack([g[0:3].mean(0), g[3:6].mean(0)]))


def _train(tmp_path: Path, name: str, strategy: str, *extra: str) -> Path:
    overrides = [
        f"output_dir={tmp_path / name}", "trainer.progress=off", "trainer.gradient_clip_norm=null", "trainer.max_epochs=2",
        "data.augment=[{name: random_crop, padding: 1}]", f"trainer.strategy={strategy}", *extra,
    ]
    return api.train(str(MLP_RECIPE), overrides).run_dir


@pytest.mark.e2e
def test_augmult_spends_the_epsilon_of_plain_dp_sgd_and_augmult_1_is_plain_dp_sgd_bit_for_bit(tmp_path: Path) -> None:
    runs = {
        "plain": _train(tmp_path, "plain", "{name: dp_sgd, target_epsilon: 3.0}"),
        "k1": _train(tmp_path, "k1", "{name: dp_sgd, target_epsilon: 3.0, augmult: 1}"),
        "k4": _train(tmp_path, "k4", f"{{name: dp_sgd, target_epsilon: 3.0, augmult: {K}}}"),
    }
    records = {k: json.loads((d / "run.json").read_text())["strategy"] for k, d in runs.items()}
    for key in ("epsilon", "noise_multiplier", "sample_rate", "steps", "delta"):
        assert records["k4"][key] == records["plain"][key] == records["k1"][key], key
    assert records["k4"]["augmult"] == K and records["plain"]["augmult"] == 1
    assert "augmentation multiplicity (K)" in (runs["k4"] / "report.html").read_text()
    assert "augmentation multiplicity" not in (runs["plain"] / "report.html").read_text()
    weights = {k: load_file(d / "model.safetensors") for k, d in runs.items()}
    assert all(torch.equal(weights["plain"][n], weights["k1"][n]) for n in weights["plain"])
    assert not all(torch.equal(weights["plain"][n], weights["k4"][n]) for n in weights["plain"])


@pytest.mark.parametrize(
    ("strategy", "augment", "message"),
    [
        ("{name: dp_sgd, noise_multiplier: 1.0, augmult: 0}", "[{name: random_crop, padding: 1}]", "augmult must be >= 1"),
        ("{name: dp_sgd, noise_multiplier: 1.0, augmult: 2}", "[]", "no random augmentation"),
    ],
)
def test_augmult_without_a_random_augmentation_or_below_one_is_refused(tmp_path: Path, strategy: str, augment: str, message: str) -> None:
    with pytest.raises(UserError, match=message):
        api.train(str(MLP_RECIPE), [f"output_dir={tmp_path}", "trainer.progress=off", "trainer.gradient_clip_norm=null",
                                    "trainer.max_epochs=1", f"data.augment={augment}", f"trainer.strategy={strategy}"])


@pytest.mark.e2e
def test_a_run_with_augmult_killed_mid_epoch_resumes_to_the_same_weights_and_epsilon(tmp_path: Path) -> None:
    from deepstrata.cli.main import main as cli_main
    from tests.training.engine_helpers import train_until_sigkill

    overrides = [
        f"output_dir={tmp_path / 'runs'}", "trainer.progress=off", "trainer.gradient_clip_norm=null", "trainer.max_epochs=2",
        "trainer.checkpoint_every_n_steps=4", "data.augment=[{name: random_crop, padding: 1}]",
        "trainer.strategy={name: dp_sgd, noise_multiplier: 1.1, augmult: 2}",
    ]
    reference = api.train(str(MLP_RECIPE), overrides).run_dir
    # 1257 // 64 = 19 Poisson steps per epoch: step 27 is mid-way through epoch 2, after the checkpoint at step 24.
    train_until_sigkill(str(MLP_RECIPE), overrides, step=27, cwd=tmp_path)
    run_dir = next(p for p in (tmp_path / "runs" / "engine_mlp_digits").iterdir() if p != reference)
    assert cli_main(["train", "--resume", str(run_dir)]) == 0
    ref, resumed = load_file(reference / "model.safetensors"), load_file(run_dir / "model.safetensors")
    assert all(torch.equal(ref[n], resumed[n]) for n in ref)
    ref_info, info = (json.loads((d / "run.json").read_text())["strategy"] for d in (reference, run_dir))
    assert info["steps"] == ref_info["steps"] == 38 and info["epsilon"] == ref_info["epsilon"] and info["augmult"] == 2
