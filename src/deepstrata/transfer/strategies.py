"""Fine-tuning strategies by name: which parameters learn, and how fast.

Problem: how much of a pretrained network to retrain is the main decision of transfer
learning, and spelling it out as parameter groups by hand in every recipe is error-prone.
Idea: three named strategies, each a rewrite of the recipe's optimizer parameter groups
(and callbacks): `feature_extraction` freezes the body and trains the head at LR 1e-3 (the
pretrained network as a fixed feature extractor); `fine_tuning` trains everything, the body
at a low LR (1e-4) so its features move little, the head at 1e-3; `gradual_unfreezing`
starts from the head alone and unfreezes the body stage by stage from the top (Howard &
Ruder 2018). The head is the Backbone's `head` module. (Yosinski et al. 2014; Kornblith et
al. 2019, "Do Better ImageNet Models Transfer Better?") Each registers with
`@register_finetune_strategy("name")`; `strata list finetune_strategies` lists them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from deepstrata.registry import register_finetune_strategy

HEAD = "head.*"


@dataclass(frozen=True)
class Strategy:
    """What a strategy adds to a recipe: optimizer param_groups (first match wins) and callbacks."""

    name: str
    param_groups: list[dict[str, Any]]
    callbacks: list[dict[str, Any]] = field(default_factory=list)


@register_finetune_strategy("feature_extraction")
def feature_extraction(*, head_lr: float = 1e-3, body_lr: float = 1e-4) -> Strategy:
    """Frozen body, head at `head_lr` (body_lr is unused: nothing in the body learns)."""
    return Strategy(
        "feature_extraction",
        [{"match": HEAD, "lr": head_lr}, {"match": "*", "frozen": True}],
        [{"name": "frozen_norm_eval"}],  # the body's BatchNorm statistics stay the pretrained ones
    )


@register_finetune_strategy("fine_tuning")
def fine_tuning(*, head_lr: float = 1e-3, body_lr: float = 1e-4) -> Strategy:
    """Everything learns: the body at a low `body_lr`, the fresh head at `head_lr`."""
    return Strategy("fine_tuning", [{"match": HEAD, "lr": head_lr}, {"match": "*", "lr": body_lr}])


@register_finetune_strategy("gradual_unfreezing")
def gradual_unfreezing(*, head_lr: float = 1e-3, body_lr: float = 1e-4, num_stages: int = 3, epochs_per_stage: int = 1) -> Strategy:
    """Head first, then one more body stage every `epochs_per_stage` epochs, body at `body_lr`."""
    return Strategy(
        "gradual_unfreezing",
        [{"match": HEAD, "lr": head_lr}, {"match": "*", "lr": body_lr}],
        [{"name": "gradual_unfreezing", "num_stages": num_stages, "epochs_per_stage": epochs_per_stage}, {"name": "frozen_norm_eval"}],
    )

