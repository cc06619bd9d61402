"""Structured channel pruning: removing channels whose output is zero leaves every family's outputs
unchanged; parameter counts drop to the closed form; `strata prune-channels` writes a derived run
that its constructor rebuilds bit-identical; unsupported models and BN-less slimming are refused."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from deepstrata import api
from deepstrata.compression.channel_pruning import channel_plan, prune_channels
from deepstrata.errors import UserError
from deepstrata.registry import MODELS
from deepstrata.run.run import Run
from deepstrata.training.callbacks.network_slimming import NetworkSlimming, bn_scales

# (architecture, kwargs, input shape): every supported family, ResNet with stride-2/projection blocks.
FAMILIES = [
    ("lenet5", {"norm": "batch"}, (3, 1, 28, 28)),
    ("lenet5", {"norm": "none", "channels": [6, 16], "hidden": [32]}, (3, 1, 28, 28)),
    ("small_cnn", {"widths": [8, 16]}, (3, 1, 8, 8)),
    ("small_cnn", {"widths": [8, 16], "norm": "none"}, (3, 1, 8, 8)),
    ("vgg", {"stages": [[8], [16, 16]], "hidden": 12}, (3, 1, 8, 8)),
    ("vgg11", {"width": 8}, (3, 1, 16, 16)),
    ("resnet", {"layers": [2, 2, 1], "widths": [8, 12, 16], "stem": "conv3_s2"}, (3, 1, 16, 16)),
    ("resnet20", {"width": 4}, (3, 1, 8, 8)),
    ("resnet", {"block": "bottleneck", "layers": [1, 2], "widths": [4, 8]}, (3, 1, 8, 8)),
]
IDS = [f"{a}-{'-'.join(f'{k}{v}' for k, v in kw.items())}".replace(" ", "") for a, kw, _ in FAMILIES]


def _built(architecture: str, kwargs: dict, seed: int = 0) -> nn.Module:
    """A model with non-trivial BatchNorm statistics and affine terms, in eval mode."""
    torch.manual_seed(seed)
    model = MODELS.get(architecture)(**kwargs)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.1)
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            elif isinstance(m, nn.Conv2d) and m.bias is not None:
                m.bias.copy_(torch.randn(m.out_channels, generator=g) * 0.1)
    return model.eval()


def _silence(model: nn.Module, fraction: float, criterion: str, seed: int = 1) -> dict[str, torch.Tensor]:
    """Make `fraction` of each group's channels output exactly zero; group name -> the channels left alive."""
    g = torch.Generator().manual_seed(seed)
    alive = {}
    with torch.no_grad():
        for group in channel_plan(model).groups:
            width = group.width
            dead = torch.randperm(width, generator=g)[: round(width * fraction)]
            for conv, norm in group.producers:
                conv.weight[dead] = 0  # zero filters (the l1 score) ...
                if conv.bias is not None:
                    conv.bias[dead] = 0
                if isinstance(norm, nn.BatchNorm2d):
                    norm.weight[dead] = 0  # ... and zero gamma and beta (the slimming score): the channel is exactly 0
                    norm.bias[dead] = 0
            keep = torch.ones(width, dtype=torch.bool)
            keep[dead] = False
            alive[group.name] = keep.nonzero().flatten()
    return alive


@pytest.mark.parametrize(("architecture", "kwargs", "shape"), FAMILIES, ids=IDS)
@pytest.mark.parametrize("criterion", ["l1", "slimming"])
def test_removing_channels_that_output_zero_leaves_the_outputs_unchanged(architecture: str, kwargs: dict, shape: tuple, criterion: str) -> None:
    model = _built(architecture, kwargs)
    has_bn = any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    if criterion == "slimming" and not has_bn:
        with pytest.raises(UserError, match=r"norm none\).*--criterion l1"):
            prune_channels(model, architecture=architecture, kwargs=kwargs, criterion="slimming")
        return
    alive = _silence(model, 0.5, criterion)
    x = torch.randn(shape, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = model(x)
    result = prune_channels(model, architecture=architecture, kwargs=kwargs, fraction=0.5, criterion=criterion)
    with torch.no_grad():
        got = result.model.eval()(x)
    assert torch.allclose(got, expected, atol=1e-5, rtol=1e-5), (got - expected).abs().max()
    assert result.fraction_removed == pytest.approx(sum(round(n * 0.5) for _, n in result.widths.values()) / sum(n for _, n in result.widths.values()))
    # The pruned model is exactly what its constructor builds from the new model.json entries.
    rebuilt = MODELS.get(result.architecture)(**result.kwargs)
    rebuilt.load_state_dict(result.model.state_dict())
    assert sum(p.numel() for p in rebuilt.parameters()) < sum(p.numel() for p in model.parameters())
    # The channels kept are the live ones, in order: each producer's BN scale (or conv bias) is the original's.
    pruned_plan = {g.name: g for g in channel_plan(result.model).groups}
    for group in channel_plan(model).groups:
        for (conv, norm), (new_conv, new_norm) in zip(group.producers, pruned_plan[group.name].producers):
            old, new = (norm.weight, new_norm.weight) if isinstance(norm, nn.BatchNorm2d) else (conv.bias, new_conv.bias)
            assert torch.equal(new, old[alive[group.name]])


def test_the_original_model_is_left_unchanged() -> None:
    model = _built("lenet5", {"norm": "batch"})
    before = {k: v.clone() for k, v in model.state_dict().items()}
    prune_channels(model, architecture="lenet5", kwargs={"norm": "batch"}, fraction=0.5)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def _lenet_parameters(c1: int, c2: int, hidden: tuple[int, int] = (120, 84), classes: int = 10) -> int:
    """Closed form for LeNet-5 with norm none on 28x28: 5x5 kernels with biases, a 5x5 map flattened."""
    h1, h2 = hidden
    return (c1 * 25 + c1) + (c2 * c1 * 25 + c2) + (h1 * c2 * 25 + h1) + (h2 * h1 + h2) + (classes * h2 + classes)


def test_parameter_count_drops_to_the_closed_form() -> None:
    model = _built("lenet5", {})
    assert sum(p.numel() for p in model.parameters()) == _lenet_parameters(6, 16) == 61706
    result = prune_channels(model, architecture="lenet5", kwargs={}, fraction=0.5)
    assert result.kwargs["channels"] == [3, 8] and result.widths == {"features.0": (3, 6), "features.4": (8, 16)}
    assert sum(p.numel() for p in result.model.parameters()) == _lenet_parameters(3, 8) == 35820
    # A basic-block ResNet halved everywhere (residual groups too) has about a quarter of the conv weights.
    kwargs = {"layers": [1, 1], "widths": [8, 16]}
    resnet = prune_channels(_built("resnet", kwargs), architecture="resnet", kwargs=kwargs, fraction=0.5)
    assert resnet.kwargs["widths"] == [4, 8] and resnet.kwargs["inner_widths"] == [[4], [8]]
    convs = sum(m.weight.numel() for m in resnet.model.modules() if isinstance(m, nn.Conv2d))
    assert convs == 9 * 1 * 4 + 9 * 4 * 4 * 2 + (9 * 4 * 8 + 9 * 8 * 8 + 4 * 8)  # stem, block 1, block 2 with its 1x1 projection
    inner = prune_channels(_built("resnet", kwargs), architecture="resnet", kwargs=kwargs, fraction=0.5, scope="inner")
    assert inner.kwargs["widths"] == [8, 16] and inner.kwargs["inner_widths"] == [[4], [8]]


def test_new_width_arguments_leave_old_models_unchanged() -> None:
    """Old model.json files (no conv_widths / inner_widths) build the same tensors as before."""
    for architecture, kwargs, extra in [
        ("small_cnn", {"widths": [8, 16]}, {"conv_widths": [8, 8, 16, 16]}),
        ("resnet", {"layers": [1, 1], "widths": [8, 16]}, {"inner_widths": [[8], [16]]}),
        ("resnet", {"block": "bottleneck", "layers": [1], "widths": [4]}, {"inner_widths": [[4, 4]]}),
    ]:
        torch.manual_seed(0)
        old = MODELS.get(architecture)(**kwargs).state_dict()
        torch.manual_seed(0)
        new = MODELS.get(architecture)(**kwargs, **extra).state_dict()
        assert old.keys() == new.keys() and all(torch.equal(old[k], new[k]) for k in old)


def test_unsupported_models_and_norms_are_refused_with_a_clear_error() -> None:
    with pytest.raises(UserError, match="no channel-pruning description for MLP; supported model classes: LeNet5, ResNet, SmallCNN, VGG"):
        prune_channels(MODELS.get("mlp")(in_features=4, num_classes=3), architecture="mlp", kwargs={})
    with pytest.raises(UserError, match="GroupNorm.*norm batch or none"):
        prune_channels(MODELS.get("small_cnn")(norm="group"), architecture="small_cnn", kwargs={"norm": "group"})
    with pytest.raises(UserError, match=r"fraction must be in \[0, 1\)"):
        prune_channels(MODELS.get("lenet5")(), architecture="lenet5", kwargs={}, fraction=1.0)


def test_network_slimming_adds_the_l1_of_the_bn_scales_and_refuses_a_model_without_bn() -> None:
    class _Trainer:
        def __init__(self, model: nn.Module) -> None:
            self.task = type("T", (), {"model": model})()

    model = _built("resnet", {"layers": [1], "widths": [4]})
    cb = NetworkSlimming(strength=1e-3)
    cb.setup(_Trainer(model))
    expected = 1e-3 * sum(m.weight.abs().sum() for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    assert torch.allclose(cb.penalty(), expected) and len(bn_scales(model)) == 3
    with pytest.raises(UserError, match="no trainable BatchNorm scales.*--criterion l1"):
        NetworkSlimming().setup(_Trainer(MODELS.get("lenet5")()))


RECIPE = {
    "name": "digits_cnn_channels",
    "seed": 0,
    "data": {"name": "digits", "batch_size": 32, "val_fraction": 0.2},
    "model": {"name": "small_cnn", "widths": [8, 16]},
    "optimizer": {"name": "adamw", "lr": 0.01, "weight_decay": 0.01},
    "trainer": {"max_epochs": 2, "progress": "off", "num_threads": 1},
}


@pytest.mark.e2e
def test_prune_channels_writes_a_derived_run_that_reloads_bit_identical(tmp_path: Path) -> None:
    parent = api.train({**RECIPE, "output_dir": str(tmp_path / "runs")}).run_dir
    cut = api.apply("prune_channels", parent, fraction=0.5, finetune_epochs=0)
    expected = prune_channels(Run.open(parent).model(), architecture="small_cnn", kwargs=Run.open(parent).spec["kwargs"], fraction=0.5).model
    derived = Run.open(cut.run_dir)
    assert derived.derived_from["tool"] == "prune_channels" and derived.spec["kwargs"]["conv_widths"] == [4, 4, 8, 8]
    reloaded = derived.model().state_dict()
    assert reloaded.keys() == expected.state_dict().keys() and all(torch.equal(v, expected.state_dict()[k]) for k, v in reloaded.items())
    assert cut.metrics["prune/parameters"] == sum(p.numel() for p in expected.parameters()) < cut.metrics["prune/parameters_before"]
    assert derived.evaluate("test")["test/accuracy"] == pytest.approx(cut.metrics["test/accuracy_pruned"], abs=1e-6)

    tuned = api.apply("prune_channels", parent, fraction=0.5, criterion="slimming", slimming_epochs=1, finetune_epochs=1)
    run = Run.open(tuned.run_dir)
    again = Run.open(tuned.run_dir).model().state_dict()
    assert all(torch.equal(v, again[k]) for k, v in run.model().state_dict().items())
    assert run.spec["channel_pruning"]["criterion"] == "slimming" and "test/accuracy_slimmed" in tuned.metrics
    assert run.evaluate("test")["test/accuracy"] == pytest.approx(tuned.metrics["test/accuracy"], abs=1e-6)
    with pytest.raises(UserError, match="slimming_epochs=1 trains for criterion slimming"):
        api.apply("prune_channels", parent, slimming_epochs=1)


@pytest.mark.e2e
def test_prune_channels_fine_tunes_a_resnet_preset_rebuilt_as_explicit_stages(tmp_path: Path) -> None:
    recipe = {**RECIPE, "model": {"name": "resnet20", "width": 4}, "trainer": {**RECIPE["trainer"], "max_epochs": 1}}
    parent = api.train({**recipe, "output_dir": str(tmp_path / "runs")}).run_dir
    result = api.apply("prune_channels", parent, fraction=0.5, finetune_epochs=1)
    run = Run.open(result.run_dir)
    assert run.spec["architecture"] == "resnet" and run.spec["kwargs"]["widths"] == [2, 4, 8]
    assert run.spec["channel_pruning"]["parent_architecture"] == "resnet20"
    assert result.metrics["prune/parameters"] == sum(p.numel() for p in run.model().parameters())
    assert run.evaluate("test")["test/accuracy"] == pytest.approx(result.metrics["test/accuracy"], abs=1e-6)
