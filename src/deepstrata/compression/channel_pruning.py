"""Structured channel pruning: whole filters removed, the layers that read them rewired.

Problem: zeroing single weights (`pruning.py`) makes a model sparse but not faster on a CPU,
whose dense convolution kernels do the same work with or without the zeros.
Idea: remove whole output channels of a convolution (its filter, its BatchNorm entries) and
the matching input channels of every layer that reads them, so the network that remains is a
smaller dense network built by the same constructor. Which channels go is decided per group,
by one of two criteria:
- `l1`: the L1 norm of each filter, smallest first (Li, Kadav, Durdanovic, Samet & Graf 2017,
  "Pruning Filters for Efficient ConvNets");
- `slimming`: the |gamma| of each channel's BatchNorm scale, smallest first, best after training
  with an L1 penalty on the scales (the `network_slimming` callback) (Liu, Li, Shen, Huang, Yan &
  Zhang 2017, "Learning Efficient Convolutional Networks through Network Slimming").

A *channel group* is a set of channels that must be kept or removed together: the outputs of
one convolution, or, in a ResNet, every convolution whose output is added to the same residual
stream through identity shortcuts (the stem and each block's last convolution of a stage, with
the stage's projection shortcut). A group is scored by the sum, over its producing layers, of
each layer's scores divided by their mean (so a 3x3x1 stem filter and a 3x3x64 block filter
weigh the same), and the same fraction is removed from every group (Li et al.'s layer-wise
choice; Liu et al.'s one global threshold over all scales is not implemented).

How a model is cut is described per model class, in the small registry below (`describes`):
each entry lists the model's channel groups (producer convolution and its norm, the consumer
layers) and says which constructor arguments express the new widths, so the pruned model is
rebuilt by its own constructor from model.json. Supported: SmallCNN, LeNet5, VGG, ResNet.
ResNet: with scope "all" (basic blocks) both the residual groups and each block's inner
channels are pruned; with scope "inner", or for bottleneck blocks (whose residual width is 4x
the stage width, not a free argument), only the inner channels, as Li et al. did for ResNets.
Only BatchNorm (or no norm) can be cut: group and layer norm mix the statistics of channels.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn

from deepstrata.errors import UserError
from deepstrata.models.cnn import SmallCNN
from deepstrata.models.lenet import LeNet5
from deepstrata.models.resnet import Bottleneck, ResNet
from deepstrata.models.vgg import VGG

Criterion = Literal["l1", "slimming"]
Scope = Literal["all", "inner"]


@dataclass
class ChannelGroup:
    """Channels kept or removed together.

    producers: (convolution, its norm) pairs whose output channels are the group; the norm is
    a BatchNorm2d or an Identity (norm "none").
    consumers: (layer, positions) pairs reading the group as input channels: a Conv2d (positions
    1) or a Linear after a flatten of (C, h, w) maps (positions h * w) or after global pooling (1).
    residual: whether identity shortcuts tie the producers together (a ResNet stage's stream).
    """

    name: str
    producers: list[tuple[nn.Conv2d, nn.Module]]
    consumers: list[tuple[nn.Module, int]]
    residual: bool = False

    @property
    def width(self) -> int:
        return self.producers[0][0].out_channels


@dataclass
class ChannelPlan:
    """A model's channel groups, and `rebuild(architecture, kwargs, widths) -> (architecture, kwargs)`
    that writes the widths (group name -> channels kept) as the constructor arguments of model.json."""

    groups: list[ChannelGroup]
    rebuild: Callable[[str, dict[str, Any], dict[str, int]], tuple[str, dict[str, Any]]]
    notes: list[str] = field(default_factory=list)


_DESCRIBERS: dict[type[nn.Module], Callable[[Any, Scope], ChannelPlan]] = {}


def describes(cls: type[nn.Module]) -> Callable[[Callable[[Any, Scope], ChannelPlan]], Callable[[Any, Scope], ChannelPlan]]:
    """Register the function that describes how models of class `cls` are cut."""

    def add(fn: Callable[[Any, Scope], ChannelPlan]) -> Callable[[Any, Scope], ChannelPlan]:
        if cls in _DESCRIBERS:
            raise TypeError(f"{cls.__name__} already has a channel-pruning description")
        _DESCRIBERS[cls] = fn
        return fn

    return add


def channel_plan(model: nn.Module, *, scope: Scope = "all") -> ChannelPlan:
    """The channel groups of `model` (looked up by its class, then its base classes)."""
    for cls in type(model).__mro__:
        if cls in _DESCRIBERS:
            plan = _DESCRIBERS[cls](model, scope)
            for group in plan.groups:
                for conv, norm in group.producers:
                    if not isinstance(norm, (nn.BatchNorm2d, nn.Identity)):
                        raise UserError(
                            f"prune_channels: {type(model).__name__} normalises with {type(norm).__name__}, which mixes the statistics of "
                            "channels, so removing one changes the others; channel pruning supports norm batch or none"
                        )
            return plan
    supported = ", ".join(sorted(c.__name__ for c in _DESCRIBERS))
    raise UserError(f"prune_channels: no channel-pruning description for {type(model).__name__}; supported model classes: {supported}")


def _pairs(seq: nn.Sequential) -> list[tuple[nn.Conv2d, nn.Module]]:
    """(conv, the norm right after it) for each convolution of a conv-norm-act Sequential."""
    mods = list(seq)
    return [(m, mods[i + 1]) for i, m in enumerate(mods) if isinstance(m, nn.Conv2d)]


def _first_linear(seq: nn.Module, fallback: nn.Linear) -> nn.Linear:
    return next((m for m in seq.modules() if isinstance(m, nn.Linear)), fallback)


def _chain(pairs: list[tuple[nn.Conv2d, nn.Module]], last: tuple[nn.Module, int], names: dict[nn.Module, str]) -> list[ChannelGroup]:
    """Groups of a plain chain of convolutions: each read by the next, the last by `last`."""
    readers = [(c, 1) for c, _ in pairs[1:]] + [last]
    return [ChannelGroup(names[c], [(c, n)], [r]) for (c, n), r in zip(pairs, readers)]


def _kwargs_of(factory: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """`kwargs` restricted to what the registered `factory` accepts (a preset's `width` dropped)."""
    from deepstrata.registry import MODELS

    accepted = inspect.signature(MODELS.get(factory)).parameters
    return {k: v for k, v in kwargs.items() if k in accepted}


@describes(SmallCNN)
def _small_cnn(model: SmallCNN, scope: Scope) -> ChannelPlan:
    names = {m: n for n, m in model.named_modules()}
    pairs = _pairs(model.features)
    groups = _chain(pairs, (model.head, 1), names)

    def rebuild(architecture: str, kwargs: dict[str, Any], widths: dict[str, int]) -> tuple[str, dict[str, Any]]:
        return architecture, {**kwargs, "conv_widths": [widths[g.name] for g in groups]}

    return ChannelPlan(groups, rebuild)


@describes(LeNet5)
def _lenet(model: LeNet5, scope: Scope) -> ChannelPlan:
    names = {m: n for n, m in model.named_modules()}
    pairs = _pairs(model.features)
    side = (model.image_size // 2 - 4) // 2  # the flattened map is channels x side x side
    groups = _chain(pairs, (_first_linear(model.classifier, model.head), side * side), names)

    def rebuild(architecture: str, kwargs: dict[str, Any], widths: dict[str, int]) -> tuple[str, dict[str, Any]]:
        return architecture, {**kwargs, "channels": [widths[g.name] for g in groups]}

    return ChannelPlan(groups, rebuild)


@describes(VGG)
def _vgg(model: VGG, scope: Scope) -> ChannelPlan:
    names = {m: n for n, m in model.named_modules()}
    per_stage = [_pairs(stage) for stage in model.stages]
    groups = _chain([p for stage in per_stage for p in stage], (_first_linear(model.classifier, model.head), 1), names)

    def rebuild(architecture: str, kwargs: dict[str, Any], widths: dict[str, int]) -> tuple[str, dict[str, Any]]:
        it = iter(groups)
        stages = [[widths[next(it).name] for _ in stage] for stage in per_stage]
        return "vgg", {**_kwargs_of("vgg", kwargs), "stages": stages}  # presets (vgg11, ...) become explicit stages

    return ChannelPlan(groups, rebuild)


@describes(ResNet)
def _resnet(model: ResNet, scope: Scope) -> ChannelPlan:
    names = {m: n for n, m in model.named_modules()}
    stages = model.feature_stages()
    blocks = [b for stage in stages for b in stage]
    bottleneck = isinstance(blocks[0], Bottleneck)
    inner: list[ChannelGroup] = []
    for b in blocks:
        if bottleneck:
            inner += [ChannelGroup(names[b.conv1], [(b.conv1, b.bn1)], [(b.conv2, 1)]), ChannelGroup(names[b.conv2], [(b.conv2, b.bn2)], [(b.conv3, 1)])]
        else:
            inner.append(ChannelGroup(names[b.conv1], [(b.conv1, b.bn1)], [(b.conv2, 1)]))
    # The residual streams: a block without a projection adds into its input's stream.
    stream = ChannelGroup(names[model.conv1], [(model.conv1, model.bn1)], [], residual=True)
    streams = [stream]
    for b in blocks:
        stream.consumers.append((b.conv1, 1))
        if b.downsample is not None:
            stream.consumers.append((b.downsample[0], 1))
            stream = ChannelGroup(names[b.downsample[0]], [(b.downsample[0], b.downsample[1])], [], residual=True)
            streams.append(stream)
        last_conv = b.conv3 if bottleneck else b.conv2
        stream.producers.append((last_conv, b.last_norm()))
    stream.consumers.append((model.head, 1))
    # Basic blocks: the stem and stage 1 share widths[0], and stage i > 1 starts with a projection.
    expressible = not bottleneck and len(streams) == len(stages)
    groups = inner + (streams if scope == "all" and expressible else [])
    notes = [] if scope == "inner" or expressible else ["residual channels kept: bottleneck residual widths are 4x the stage width"]

    def rebuild(architecture: str, kwargs: dict[str, Any], widths: dict[str, int]) -> tuple[str, dict[str, Any]]:
        per_block = 2 if bottleneck else 1
        inner_widths = [[widths.get(g.name, g.width) for g in inner[i * per_block : (i + 1) * per_block]] for i in range(len(blocks))]
        stage_widths = [widths.get(s.name, s.width) for s in streams] if expressible else [_stage_width(stage) for stage in stages]
        full = {**_kwargs_of("resnet", kwargs), "block": "bottleneck" if bottleneck else "basic", "layers": [len(s) for s in stages]}
        return "resnet", {**full, "widths": stage_widths, "inner_widths": inner_widths}  # presets (resnet20, ...) become explicit stages

    return ChannelPlan(groups, rebuild, notes)


def _stage_width(stage: nn.Sequential) -> int:
    block = stage[0]
    return block.last_norm().num_features // block.expansion


# --------------------------------------------------------------------------------------
# Scoring and cutting.
# --------------------------------------------------------------------------------------


def channel_scores(group: ChannelGroup, criterion: Criterion, *, model_name: str = "the model") -> torch.Tensor:
    """(width,) importance of each channel of the group: higher is kept first."""
    total = torch.zeros(group.width)
    for conv, norm in group.producers:
        if criterion == "l1":
            score = conv.weight.detach().abs().sum(dim=(1, 2, 3))  # the filter's L1 norm (Li et al. 2017)
        else:
            if not isinstance(norm, nn.BatchNorm2d) or not norm.affine:
                raise UserError(
                    f"prune_channels: criterion slimming ranks channels by their BatchNorm scale, but {model_name} has no BatchNorm after a "
                    "convolution (norm none); use --criterion l1, or train with norm batch"
                )
            score = norm.weight.detach().abs()  # |gamma| (Liu et al. 2017)
        total += score.cpu().float() / score.mean().clamp_min(1e-12).cpu().float()
    return total


def kept_channels(scores: torch.Tensor, fraction: float) -> torch.Tensor:
    """Sorted indices of the channels kept when `fraction` of them (rounded, at least one kept) go."""
    width = scores.numel()
    keep = max(1, width - round(width * fraction))
    order = torch.argsort(scores, descending=True, stable=True)  # ties: the lower index is kept
    return order[:keep].sort().values


def _cut_param(module: nn.Module, name: str, idx: torch.Tensor, dim: int) -> None:
    tensor = getattr(module, name)
    if tensor is None:
        return
    cut = tensor.detach().index_select(dim, idx.to(tensor.device)).clone()
    if isinstance(tensor, nn.Parameter):
        setattr(module, name, nn.Parameter(cut, requires_grad=tensor.requires_grad))
    else:
        setattr(module, name, cut)


def _cut_group(group: ChannelGroup, idx: torch.Tensor) -> None:
    """Keep only channels `idx` of the group, in place: producers' outputs, consumers' inputs."""
    for conv, norm in group.producers:
        _cut_param(conv, "weight", idx, 0)
        _cut_param(conv, "bias", idx, 0)
        conv.out_channels = len(idx)
        if isinstance(norm, nn.BatchNorm2d):
            for name in ("weight", "bias", "running_mean", "running_var"):
                _cut_param(norm, name, idx, 0)
            norm.num_features = len(idx)
    for layer, positions in group.consumers:
        if isinstance(layer, nn.Conv2d):
            if layer.groups != 1:
                raise UserError(f"prune_channels: {group.name} feeds a grouped convolution (groups={layer.groups}), which cannot be cut")
            _cut_param(layer, "weight", idx, 1)
            layer.in_channels = len(idx)
        else:  # a Linear reading (C, h, w) flattened channel-major: channel c is columns c*positions ... +positions
            cols = (idx[:, None] * positions + torch.arange(positions)).flatten()
            _cut_param(layer, "weight", cols, 1)
            layer.in_features = len(cols)


@dataclass
class PrunedChannels:
    """What `prune_channels` returns: the new model, the model.json architecture and kwargs that
    rebuild it, the channels kept per group (name -> (kept, of)), and notes on what was left."""

    model: nn.Module
    architecture: str
    kwargs: dict[str, Any]
    widths: dict[str, tuple[int, int]]
    notes: list[str]

    @property
    def fraction_removed(self) -> float:
        kept = sum(k for k, _ in self.widths.values())
        total = sum(n for _, n in self.widths.values())
        return 1.0 - kept / total if total else 0.0


def prune_channels(
    model: nn.Module, *, architecture: str, kwargs: dict[str, Any], fraction: float = 0.5, criterion: Criterion = "l1", scope: Scope = "all"
) -> PrunedChannels:
    """Remove `fraction` of the channels of every group of `model` (which is left unchanged).

    `architecture` and `kwargs` are the model's model.json entries; the result's are those of
    the pruned model, which is built by the registered constructor and loaded with the cut
    weights (strictly: a description that disagrees with the constructor is an error).
    """
    from deepstrata.registry import MODELS

    if not 0.0 <= fraction < 1.0:
        raise UserError(f"prune_channels: fraction must be in [0, 1), got {fraction}")
    if criterion not in ("l1", "slimming"):
        raise UserError(f"prune_channels: unknown criterion {criterion!r}; choose l1 or slimming")
    work = copy.deepcopy(model)
    plan = channel_plan(work, scope=scope)
    kept = {g.name: kept_channels(channel_scores(g, criterion, model_name=type(model).__name__), fraction) for g in plan.groups}
    widths = {g.name: (len(kept[g.name]), g.width) for g in plan.groups}
    for group in plan.groups:
        _cut_group(group, kept[group.name])
    new_arch, new_kwargs = plan.rebuild(architecture, dict(kwargs), {k: v[0] for k, v in widths.items()})
    fresh = MODELS.get(new_arch)(**new_kwargs)
    try:
        fresh.load_state_dict(work.state_dict())
    except RuntimeError as err:  # pragma: no cover - a description out of step with its constructor
        raise RuntimeError(f"the channel-pruning description of {type(model).__name__} disagrees with its constructor: {err}") from None
    fresh.train(model.training)
    return PrunedChannels(fresh, new_arch, new_kwargs, widths, plan.notes)
