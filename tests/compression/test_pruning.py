"""Magnitude pruning equals torch.nn.utils.prune's masks; `strata prune` holds its zeros through fine-tuning
and its derived run reloads bit-identical."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn
from torch.nn.utils import prune as torch_prune

from deepstrata import api
from deepstrata.compression.pruning import apply_masks, magnitude_masks, prunable, sparsity_of
from deepstrata.errors import UserError
from deepstrata.registry import MODELS
from deepstrata.run.run import Run


def _lenet() -> nn.Module:
    torch.manual_seed(0)
    return MODELS.get("lenet5")(num_classes=10)


@pytest.mark.parametrize("sparsity", [0.5, 0.9])
def test_global_masks_equal_torch_global_unstructured(sparsity: float) -> None:
    model, theirs = _lenet(), _lenet()
    ours = magnitude_masks(model, sparsity, scope="global")
    params = [(m, "weight") for m in theirs.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    torch_prune.global_unstructured(params, pruning_method=torch_prune.L1Unstructured, amount=sparsity)
    masks = {f"{n.removesuffix('_mask')}": b for n, b in theirs.named_buffers() if n.endswith("weight_mask")}
    assert set(masks) == set(ours)
    for name in ours:
        assert torch.equal(ours[name], masks[name].bool()), name


def test_layer_masks_equal_torch_l1_unstructured_per_layer() -> None:
    model, theirs = _lenet(), _lenet()
    ours = magnitude_masks(model, 0.7, scope="layer")
    for name, module in theirs.named_modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            torch_prune.l1_unstructured(module, "weight", amount=0.7)
            assert torch.equal(ours[f"{name}.weight"], module.weight_mask.bool()), name
            assert float(1 - ours[f"{name}.weight"].float().mean()) == pytest.approx(0.7, abs=1 / module.weight.numel())


def test_applying_masks_zeroes_exactly_the_fraction_and_leaves_biases() -> None:
    model = _lenet()
    biases = {n: p.detach().clone() for n, p in model.named_parameters() if p.dim() == 1}
    apply_masks(model, magnitude_masks(model, 0.8))
    total = sum(p.numel() for p in prunable(model).values())
    assert sparsity_of(model) == round(0.8 * total) / total
    assert all(torch.equal(p, biases[n]) for n, p in model.named_parameters() if p.dim() == 1)
    with pytest.raises(UserError, match=r"sparsity must be in \[0, 1\)"):
        magnitude_masks(model, 1.0)


RECIPE = {
    "name": "prune_cnn",
    "seed": 0,
    "data": {"name": "digits", "batch_size": 32, "val_fraction": 0.2},
    "model": {"name": "small_cnn", "widths": [16, 32]},
    "optimizer": {"name": "adamw", "lr": 0.005, "weight_decay": 0.01},
    "trainer": {"max_epochs": 4, "progress": "off", "num_threads": 1},
}


@pytest.mark.e2e
def test_prune_finetunes_with_the_zeros_held_and_the_derived_run_reloads_identically(tmp_path: Path) -> None:
    parent = api.train({**RECIPE, "output_dir": str(tmp_path / "runs")}).run_dir
    result = api.apply("prune", parent, sparsity=0.8, finetune_epochs=2)
    m = result.metrics
    assert m["prune/sparsity"] == pytest.approx(0.8, abs=1e-3)  # weight decay and momentum did not regrow a pruned weight
    assert m["test/accuracy"] > m["test/accuracy_pruned"] - 1e-9  # fine-tuning did not make it worse than the cut
    derived = Run.open(result.run_dir)
    assert derived.derived_from["tool"] == "prune" and derived.spec["pruning"]["sparsity"] == 0.8
    reloaded = Run.open(result.run_dir).model()
    again = Run.open(result.run_dir).model()
    assert all(torch.equal(a, b) for a, b in zip(reloaded.state_dict().values(), again.state_dict().values()))
    assert sparsity_of(reloaded) == pytest.approx(m["prune/sparsity"], abs=0)
    assert derived.evaluate("test")["test/accuracy"] == pytest.approx(m["test/accuracy"], abs=1e-6)
    with pytest.raises(UserError, match="finetune_epochs must be >= 0"):
        api.apply("prune", parent, finetune_epochs=-1)


@pytest.mark.e2e
def test_prune_fine_tunes_a_channel_pruned_run_with_its_own_narrower_architecture(tmp_path: Path) -> None:
    """A derived run keeps its parent's config.yaml; fine-tuning must build the model model.json names."""
    parent = api.train({**RECIPE, "trainer": {**RECIPE["trainer"], "max_epochs": 1}, "output_dir": str(tmp_path / "runs")}).run_dir
    narrow = api.apply("prune_channels", parent, fraction=0.5, finetune_epochs=0).run_dir
    widths = Run.open(narrow).spec["kwargs"]["conv_widths"]
    result = api.apply("prune", narrow, sparsity=0.5, finetune_epochs=1)
    pruned = Run.open(result.run_dir)
    assert pruned.spec["kwargs"]["conv_widths"] == widths and widths != [16, 16, 32, 32]
    assert sparsity_of(pruned.model()) == pytest.approx(0.5, abs=1e-3)
    assert result.metrics["test/accuracy"] == pytest.approx(pruned.evaluate("test")["test/accuracy"], abs=1e-6)
