"""Frozen normalisation layers stay frozen: BatchNorm in a frozen body uses its stored statistics.

Problem: freezing a body's parameters (`requires_grad=False`) does not freeze its BatchNorm
layers: in training mode they normalise with the statistics of each small new batch and
overwrite the running statistics learnt during pretraining, so the "fixed" features drift
and differ between training and evaluation.
Idea: before every training batch, put each normalisation layer whose parameters are all
frozen into evaluation mode, so it applies the pretrained running mean and variance, as
Keras does for frozen BatchNormalization layers (Ioffe & Szegedy 2015 on the statistics).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from deepstrata.registry import register_callback
from deepstrata.training.callbacks.base import Callback


class FrozenNormEval(Callback):
    def on_train_batch_start(self, trainer: Any, batch: Any) -> None:
        for module in trainer.task.model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                params = list(module.parameters(recurse=False))
                if params and not any(p.requires_grad for p in params):
                    module.eval()


@register_callback("frozen_norm_eval")
def frozen_norm_eval() -> FrozenNormEval:
    """Keep BatchNorm layers whose parameters are frozen in evaluation mode while training."""
    return FrozenNormEval()
