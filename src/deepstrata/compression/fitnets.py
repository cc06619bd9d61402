"""FitNets: a student guided by a teacher's intermediate features as well as by its outputs.

Problem: soft targets tell a student what the teacher answers, not how it gets there; a thin
student trained on outputs alone gets no signal about what its middle layers should compute.
Idea (Romero, Ballas, Kahou, Chassang, Gatta & Bengio 2015, "FitNets: Hints for Thin Deep
Nets"): pick a teacher layer, the hint h, and a student layer, the guided layer g. A small
learned regressor r maps the guided layer's output to the hint's shape, and the student also
minimises the L2 distance between the two:

    hint_loss = mean over N and every feature element of (u_h(x) - r(v_g(x)))^2

The paper writes 1/2 ||u_h - r(v_g)||^2 per example. The mean over elements used here is that
sum times 2 / (elements per example), so a `hint_weight` keeps its meaning whatever the size
of the layer.

How it is built here:
- Layers are chosen through the Backbone interface: stage i of `feature_stages()`, the tensor
  `forward_intermediates` returns.
- The regressor is a 1x1 convolution for (N, C, H, W) maps, whose H and W must be the hint's,
  and a linear map on the last dimension for (N, C) vectors and (N, L, C) tokens, whose L must
  be the hint's. The paper's larger-kernel regressor for unequal maps is not offered: the
  sizes must match, or the error names the stages that do.
- Defaults: the hint is the teacher's middle stage (the paper's choice). The guided layer is
  the student stage with the hint's spatial size nearest the student's middle (ties go to the
  deeper one).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from deepstrata.errors import UserError


def hint_loss(guided: torch.Tensor, hint: torch.Tensor, regressor: nn.Module) -> torch.Tensor:
    """mean((hint - regressor(guided))^2): guided (N, C_s, ...), hint (N, C_t, ...), same trailing sizes."""
    return F.mse_loss(regressor(guided), hint)


class Regressor(nn.Module):
    """The FitNets regressor r: C_s student channels -> C_t teacher channels, at every position.

    A 1x1 convolution for (N, C, H, W) maps; a linear map on the last dimension for (N, C)
    vectors and (N, L, C) tokens.
    """

    def __init__(self, student_channels: int, teacher_channels: int, *, maps: bool):
        super().__init__()
        self.proj = nn.Conv2d(student_channels, teacher_channels, 1) if maps else nn.Linear(student_channels, teacher_channels)

    def forward(self, guided: torch.Tensor) -> torch.Tensor:
        return self.proj(guided)


def build_regressor(student_shape: tuple[int, ...], teacher_shape: tuple[int, ...], *, seed: int) -> Regressor:
    """The regressor from one example's guided and hint shapes (batch dimension included).

    Its initial weights come from `seed` in a forked RNG, so building it draws nothing from the
    student's random stream (dropout, augmentation).
    """
    maps = len(student_shape) == 4
    channels = (student_shape[1], teacher_shape[1]) if maps else (student_shape[-1], teacher_shape[-1])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return Regressor(*channels, maps=maps)


def stage_shapes(model: nn.Module, example: torch.Tensor, who: str) -> list[tuple[int, ...]]:
    """The shape of every stage output of a Backbone for `example`, run in eval mode without gradients."""
    if not hasattr(model, "forward_intermediates"):
        raise UserError(f"FitNets: the {who} ({type(model).__name__}) is not a Backbone; hints need a model with feature_stages() and forward_intermediates()")
    was_training = model.training
    model.eval()  # batch norm keeps its running statistics; dropout draws nothing
    try:
        with torch.no_grad():
            outs = model.forward_intermediates(example)
    except NotImplementedError:
        raise UserError(f"FitNets: the {who} ({type(model).__name__}) declares no feature stages, so it has no layer to take a hint from") from None
    finally:
        model.train(was_training)
    return [tuple(o.shape) for o in outs]


def spatial(shape: tuple[int, ...]) -> tuple[int, ...]:
    """The positions of a stage output: (H, W) of a map, (L,) of tokens, () of a vector."""
    return tuple(shape[2:]) if len(shape) == 4 else tuple(shape[1:-1])


def choose_stages(
    teacher_shapes: list[tuple[int, ...]], student_shapes: list[tuple[int, ...]], hint_layer: int | None, guided_layer: int | None
) -> tuple[int, int]:
    """(hint index, guided index), each in [0, number of stages): the defaults filled in, the sizes checked."""
    hint = len(teacher_shapes) // 2 if hint_layer is None else _index("hint_layer", "teacher", hint_layer, len(teacher_shapes))
    want = spatial(teacher_shapes[hint])
    if guided_layer is None:
        middle = len(student_shapes) // 2
        matching = [i for i, s in enumerate(student_shapes) if _compatible(s, teacher_shapes[hint])]
        if not matching:
            raise UserError(
                f"FitNets: no student stage matches the hint (teacher stage {hint}, shape {_per_example(teacher_shapes[hint])}); "
                f"student stages: {_listing(student_shapes)}; teacher stages: {_listing(teacher_shapes)}; "
                "choose --hint-layer and --guided-layer with the same spatial size"
            )
        guided = min(matching, key=lambda i: (abs(i - middle), -i))
    else:
        guided = _index("guided_layer", "student", guided_layer, len(student_shapes))
        if not _compatible(student_shapes[guided], teacher_shapes[hint]):
            fits = [i for i, s in enumerate(student_shapes) if _compatible(s, teacher_shapes[hint])]
            raise UserError(
                f"FitNets: the guided layer (student stage {guided}, shape {_per_example(student_shapes[guided])}) and the hint "
                f"(teacher stage {hint}, shape {_per_example(teacher_shapes[hint])}) must have the same layout and spatial size "
                f"{want or '(vectors)'}; the regressor is a 1x1 convolution or a linear map. "
                f"Student stages of that size: {fits or 'none'}; student stages: {_listing(student_shapes)}; "
                f"teacher stages: {_listing(teacher_shapes)}"
            )
    return hint, guided


def _compatible(student: tuple[int, ...], teacher: tuple[int, ...]) -> bool:
    return len(student) == len(teacher) and spatial(student) == spatial(teacher)


def _index(option: str, who: str, value: int, count: int) -> int:
    if not -count <= value < count:
        raise UserError(f"FitNets: {option}={value} is out of range: the {who} has {count} feature stages; choose from {-count}..{count - 1}")
    return value % count


def _per_example(shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(shape[1:])


def _listing(shapes: list[tuple[int, ...]]) -> str:
    return ", ".join(f"{i}: {_per_example(s)}" for i, s in enumerate(shapes))


@contextmanager
def catch_stage(model: nn.Module, index: int) -> Iterator[dict[str, torch.Tensor]]:
    """While inside, `caught["out"]` is stage `index`'s output of the model's last forward pass.

    The model is called as usual, so its output is the very tensor a plain forward computes;
    the stage output comes from a forward hook, as in `Backbone.forward_intermediates`.
    """
    caught: dict[str, torch.Tensor] = {}

    def hook(module: nn.Module, args: Any, output: Any) -> None:
        caught["out"] = output[0] if isinstance(output, tuple) else output

    handle = model.feature_stages()[index].register_forward_hook(hook)
    try:
        yield caught
    finally:
        handle.remove()
