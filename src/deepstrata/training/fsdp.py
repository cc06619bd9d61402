"""Fully sharded data parallel: each rank stores only a shard of the weights and optimizer state.

Problem: data parallelism keeps a full copy of the weights, gradients and optimizer moments on
every GPU, so the largest trainable model is bounded by one device's memory.
Idea: shard all three across ranks and all-gather a layer's weights just before it runs,
reduce-scatter its gradients right after (ZeRO-3: Rajbhandari et al. 2020, arXiv:1910.02054;
PyTorch FSDP: Zhao et al. 2023, arXiv:2304.11277). GPU only here (NCCL); untested in this
repository's CI, which has no GPU.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from deepstrata.errors import UserError
from deepstrata.registry import register_strategy
from deepstrata.training.strategy import DDPStrategy


class FSDPStrategy(DDPStrategy):
    """Shards the task's model with `torch.distributed.fsdp.fully_shard` (FSDP2) under torchrun."""

    name = "fsdp"

    def __init__(self, device: torch.device):
        if device.type != "cuda":
            raise UserError("trainer.strategy=fsdp needs CUDA GPUs (NCCL); on CPU use trainer.strategy=ddp (or auto under torchrun)")
        super().__init__(device)

    def prepare_model(self, model: nn.Module) -> None:
        """Shard before the optimizer is built: fully_shard replaces the parameters with DTensors."""
        from torch.distributed.fsdp import fully_shard

        model.to(self.device)
        for child in model.children():  # shard each top-level block, then the root
            if any(p.requires_grad for p in child.parameters()):
                fully_shard(child)
        fully_shard(model)

    def setup(self, task: nn.Module) -> None:
        self.module = None

    def training_step(self, task: Any, batch: Any) -> Any:
        # FSDP2 hooks live on the model's own forward: no wrapper is needed.
        return task.training_step(batch)


@register_strategy("fsdp")
def fsdp(*, device: torch.device) -> FSDPStrategy:
    """Fully sharded data parallel under torchrun (CUDA): weights, gradients and optimizer state sharded."""
    return FSDPStrategy(device)
