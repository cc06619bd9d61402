"""The one small interface every classification backbone shares.

Problem: fine-tuning, Grad-CAM, pruning, distillation and dense prediction all need to reach
"the features" and "the head" of a model, some of them the feature map *before* it is pooled;
if each tool learns each model's internals, tools and models multiply into special cases.
Idea: every classifier exposes timm's interface: `forward_features(x)` is the last feature map
before pooling, `forward_head(features, pre_logits=False)` pools and classifies (or stops at the
pooled vector), `forward_intermediates(x, indices)` returns chosen stage outputs, and
`reset_head(num_classes)` replaces the classifier; `forward(x) = forward_head(forward_features(x))`.
(Wightman, "PyTorch Image Models" (timm).)
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any, ClassVar, Literal

import torch
from torch import nn

FeatureFormat = Literal["NCHW", "NLC", "NC"]


class Backbone(nn.Module):
    """Base class of classifiers: features before pooling, then a head that pools and classifies.

    `feature_format` is the layout `forward_features` returns: "NCHW" maps of a CNN, "NLC"
    tokens or per-step states (N, T, D) of a Transformer or recurrent network, "NC" vectors of
    a model with no spatial map (there, the features already are the pooled vector).
    `feature_stages()` lists the modules whose outputs are the intermediate features, in
    forward order; each model's docstring says what its stages are.
    """

    head: nn.Module
    feature_format: ClassVar[FeatureFormat] = "NC"

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        """Input -> the last features before pooling, laid out as `feature_format` says."""
        raise NotImplementedError

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Pool `features` to (N, num_features) and classify; `pre_logits=True` returns the pooled vector.

        This default is for "NC" features, which need no pooling; models with maps or tokens
        override it with their own pooling (average, class token, masked mean, last step).
        """
        return features if pre_logits else self.head(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def feature_stages(self) -> list[nn.Module]:
        """The modules whose outputs are the intermediate features, in forward order."""
        raise NotImplementedError(f"{type(self).__name__} declares no feature stages; override feature_stages()")

    def forward_intermediates(self, x: torch.Tensor, indices: int | Sequence[int] | None = None) -> list[torch.Tensor]:
        """The outputs of the chosen stages while computing `forward_features(x)`, in stage order.

        `indices` is n (the last n stages), a list of stage indices (negative ones count from
        the end, as in timm), or None (every stage). The outputs are caught by forward hooks on
        `feature_stages()`, so they are the very tensors `forward_features` computes; a stage
        module that returns a tuple contributes its first element.
        """
        stages = self.feature_stages()
        take = take_indices(type(self).__name__, len(stages), indices)
        caught: dict[int, torch.Tensor] = {}
        hooks = [stages[i].register_forward_hook(partial(_catch, caught, i)) for i in take]
        try:
            self.forward_features(x)
        finally:
            for hook in hooks:
                hook.remove()
        return [caught[i] for i in take]

    @property
    def num_features(self) -> int:
        """Width of the pooled vector `forward_head(features, pre_logits=True)` returns (the classifier's input)."""
        head = self.head
        linear = head if isinstance(head, nn.Linear) else next(m for m in head.modules() if isinstance(m, nn.Linear))
        return linear.in_features

    def reset_head(self, num_classes: int) -> None:
        """Replace the classification head with a fresh one for `num_classes` classes."""
        self.head = nn.Linear(self.num_features, num_classes)


def take_indices(model: str, num_stages: int, indices: int | Sequence[int] | None) -> list[int]:
    """Stage indices in [0, num_stages), sorted and unique: n means the last n stages, None all of them."""
    if indices is None:
        return list(range(num_stages))
    if isinstance(indices, int):
        if not 1 <= indices <= num_stages:
            raise ValueError(f"{model}.forward_intermediates: indices={indices} asks for the last {indices} stages, but it has {num_stages}; choose 1..{num_stages}")
        return list(range(num_stages - indices, num_stages))
    bad = [i for i in indices if not -num_stages <= i < num_stages]
    if bad:
        raise ValueError(f"{model}.forward_intermediates: stage index {bad[0]} is out of range for {num_stages} stages; choose from {-num_stages}..{num_stages - 1}")
    return sorted({i % num_stages for i in indices})


def _catch(caught: dict[int, torch.Tensor], index: int, module: nn.Module, args: Any, output: Any) -> None:
    caught[index] = output[0] if isinstance(output, tuple) else output
