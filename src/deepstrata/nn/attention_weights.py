"""Reading the attention weights out of a network whose blocks do not return them.

Problem: attention maps and attention rollout need every layer's (N, heads, T, T) weights, but
a Transformer block calls its attention module on the fast path, which never forms them, and
returns only the hidden states; threading a "return the weights" flag through every block and
stack for the sake of explanations would widen every forward signature.
Idea: for one forward pass, a pre-hook on each `MultiHeadAttention` asks it for its weights
(need_weights=True, per head), which routes it through the reference path (the formula written
out, tested equal to the fused kernel), and a forward hook keeps them; the block uses only the
attention output, so the pass computes the same hidden states. The hooks are removed afterwards.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn


def capture_attention_weights(modules: Sequence[nn.Module], run: Callable[[], Any]) -> list[torch.Tensor]:
    """Call `run()` once and return each attention module's weights (N, heads, L, S), in the order of `modules`.

    `modules` are `deepstrata.nn.attention.MultiHeadAttention` modules that `run` calls once each.
    """
    caught: dict[int, torch.Tensor] = {}

    def ask(module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        return args, {**kwargs, "need_weights": True, "average_attn_weights": False}

    def keep(index: int) -> Callable[..., None]:
        def hook(module: nn.Module, args: Any, output: Any) -> None:
            caught[index] = output[1]

        return hook

    handles = []
    try:
        for i, module in enumerate(modules):
            handles.append(module.register_forward_pre_hook(ask, with_kwargs=True))
            handles.append(module.register_forward_hook(keep(i)))
        run()
    finally:
        for handle in handles:
            handle.remove()
    missing = [i for i in range(len(modules)) if i not in caught]
    if missing:
        raise RuntimeError(f"capture_attention_weights: attention modules {missing} did not run in the forward pass")
    return [caught[i] for i in range(len(modules))]
