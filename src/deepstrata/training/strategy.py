"""Where the steps run: one process, or data-parallel ranks launched by torchrun.

Problem: a loop written for one process needs gradient averaging, sharded data, reduced
metrics and a single writer once it runs on several ranks, and sprinkling `if rank == 0`
through it makes it unreadable.
Idea: a strategy object owns exactly those differences. `SingleProcess` is the identity;
`DDPStrategy` wraps the task's training step in `DistributedDataParallel`, which averages
gradients across ranks during backward (Li et al. 2020, arXiv:2006.15704), and averages
logged metrics across ranks. Launch with `torchrun`; gloo on CPU, NCCL on GPU.

Strategies register with `@register_strategy("name")` (`strata list strategies`); a recipe's
`trainer.strategy: auto` picks `ddp` under a torchrun launch with more than one rank, else `single`.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import nn

from deepstrata.errors import UserError
from deepstrata.registry import register_strategy, registry

# Not a registered strategy but the choice rule of `resolve_strategy`; recipes accept it too
# (config.AUTO_STRATEGY).
AUTO = "auto"


class SingleProcess:
    """One process, one device: every method is the identity."""

    name = "single"
    world_size = 1
    rank = 0
    is_rank_zero = True

    def prepare_model(self, model: nn.Module) -> None:
        """Change the model before the optimizer is built (FSDP shards its parameters here)."""

    def setup(self, task: nn.Module) -> None: ...

    def prepare_training(self, trainer: Any, optimizer: Any, train_loader: Any) -> tuple[Any, Any]:
        """The optimizer and training batches the loop uses (DP-SGD wraps both: privacy/dp_sgd.py)."""
        return optimizer, train_loader

    def training_step(self, task: Any, batch: Any) -> Any:
        return task.training_step(batch)

    def epoch_metrics(self) -> dict[str, float]:
        """What the strategy adds to an epoch's training metrics (DP-SGD: `train/epsilon`)."""
        return {}

    def record(self) -> dict[str, Any]:
        """What run.json keeps about the strategy besides its name (DP-SGD: its privacy guarantee)."""
        return {}

    def saved_model_spec(self, spec: dict[str, Any]) -> dict[str, Any]:
        """model.json's content; a strategy that changed the architecture says so here."""
        return spec

    def state_dict(self) -> dict[str, Any]:
        """The strategy's part of a checkpoint (DP-SGD: the accountant's history)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None: ...

    def reduce(self, metrics: dict[str, float]) -> dict[str, float]:
        return metrics

    def broadcast(self, obj: Any) -> Any:
        return obj

    def barrier(self) -> None: ...

    def teardown(self) -> None: ...


class _TrainingStep(nn.Module):
    """Makes `task.training_step` the forward of a module, so DDP sees the forward it must sync."""

    def __init__(self, task: nn.Module):
        super().__init__()
        self.task = task

    def forward(self, batch: Any) -> Any:
        return self.task.training_step(batch)


class DDPStrategy(SingleProcess):
    """Distributed data parallel over the ranks of a torchrun launch (one process per device)."""

    name = "ddp"

    def __init__(self, device: torch.device):
        import torch.distributed as dist

        if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
            raise UserError("trainer.strategy=ddp needs a torchrun launch: torchrun --nproc_per_node=N -m deepstrata.cli.main train RECIPE")
        if not dist.is_initialized():
            dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
        self.device = device
        self.rank = dist.get_rank()
        self.world_size = dist.get_world_size()
        self.is_rank_zero = self.rank == 0
        self.module: nn.Module | None = None

    def setup(self, task: nn.Module) -> None:
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        self.module = DistributedDataParallel(_TrainingStep(task), device_ids=ids)

    def training_step(self, task: Any, batch: Any) -> Any:
        assert self.module is not None, "DDPStrategy.setup(task) runs before the first step"
        return self.module(batch)

    def reduce(self, metrics: dict[str, float]) -> dict[str, float]:
        """The mean of each metric over ranks (same keys on every rank; rank-local values)."""
        import torch.distributed as dist

        if not metrics:
            return metrics
        keys = sorted(metrics)
        values = torch.tensor([float(metrics[k]) for k in keys], dtype=torch.float64)
        if self.device.type == "cuda":
            values = values.to(self.device)
        dist.all_reduce(values)
        return {k: float(v) / self.world_size for k, v in zip(keys, values.tolist())}

    def broadcast(self, obj: Any) -> Any:
        import torch.distributed as dist

        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def barrier(self) -> None:
        import torch.distributed as dist

        dist.barrier()

    def teardown(self) -> None:
        """Leave the process group in lock-step, after DDP has let go of it.

        DDP's reducer holds a reference to the gloo process group; if the wrapper is freed after
        `destroy_process_group`, the group's destructor runs then, joining worker threads while the
        other rank may be gone, and the process hung at exit (seen in CI-like runs). So: wait for
        every rank, drop the wrapper while the group is alive, then destroy the group.
        """
        import gc

        import torch.distributed as dist

        if dist.is_initialized():
            dist.barrier()
            self.module = None
            gc.collect()
            dist.destroy_process_group()


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def local_device(device: torch.device) -> torch.device:
    """Under torchrun each rank takes its own GPU (LOCAL_RANK); CPU ranks share the CPU."""
    if device.type == "cuda" and launched_by_torchrun():
        index = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(index)
        return torch.device("cuda", index)
    return device


@register_strategy("single")
def single(*, device: torch.device) -> SingleProcess:
    """One process on one device: the loop as written (the default outside torchrun)."""
    return SingleProcess()


@register_strategy("ddp")
def ddp(*, device: torch.device) -> DDPStrategy:
    """Distributed data parallel under torchrun: a full model per rank, gradients averaged in backward."""
    return DDPStrategy(device)


def resolve_strategy(name: str) -> str:
    """The registered strategy that `name` means: "auto" is ddp under torchrun with >1 rank, else single."""
    if name == AUTO:
        return "ddp" if launched_by_torchrun() else "single"
    return name


def build_strategy(spec: Any, device: torch.device) -> SingleProcess:
    """The strategy a recipe's `trainer.strategy` names on `device`: a name ("auto" applies the
    rule above) or `{name: ..., **kwargs}` for a strategy with settings (`dp_sgd`)."""
    from deepstrata.arguments import validate_component_kwargs

    name, kwargs = (spec, {}) if isinstance(spec, str) else (spec.name, spec.kwargs)
    factory = registry("strategy").get(resolve_strategy(name))
    clean = validate_component_kwargs(factory, kwargs, path="trainer.strategy", injected=frozenset({"device"}))
    return factory(device=device, **clean)
