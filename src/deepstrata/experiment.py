"""From a validated recipe to live objects: data, model, task, optimizer, schedule, loaders.

Problem: the CLI, the Python API, `evaluate`, tests and benchmarks all need the same recipe
turned into the same objects; copies of that glue drift apart.
Idea: one builder, driven only by registered names. Arguments a model can take from the data
(`num_classes`, `in_channels`, ...) are filled in when the recipe leaves them out, and the
filled-in values are written back into the resolved recipe that the run saves.
"""

from __future__ import annotations

import inspect
import random
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, default_collate

from deepstrata.config import TASK_INJECTED, ComponentSpec, Recipe, validate_component_kwargs
from deepstrata.data.base import DataBundle, build_data
from deepstrata.data.tensor_loader import TensorLoader, tensor_source
from deepstrata.errors import ConfigError
from deepstrata.registry import registry
from deepstrata.tasks.base import Task
from deepstrata.transforms.pipeline import split_collate


@dataclass
class Experiment:
    recipe: Recipe  # resolved: inferred model arguments filled in
    data: DataBundle
    model: nn.Module
    task: Task
    generator: torch.Generator
    # Device copies of the data's tensors, shared by this experiment's tensor loaders.
    placed: dict[tuple[int, str], torch.Tensor] = field(default_factory=dict, repr=False)

    def loader(self, split: str, *, device: torch.device | str | None = None) -> DataLoader | TensorLoader | None:
        """The split's batches; `device` is where the tensor path keeps the data (the training device)."""
        dataset = getattr(self.data, split)
        if dataset is None:
            return None
        spec = self.recipe.data
        train = split == "train"
        # The order of an epoch is a function of (seed, epoch): exact mid-epoch resume, and under
        # torchrun each rank reads its share (data.batch_size is the global batch).
        from deepstrata.training.sampler import ResumableSampler, data_parallel_world

        rank, world = data_parallel_world()
        batch_size = spec.batch_size if train else spec.eval_batch_size
        if world > 1 and train and batch_size % world:
            raise ConfigError(f"data.batch_size={batch_size} is the global batch and must divide by the {world} ranks")
        sampler = ResumableSampler(dataset, seed=self.recipe.seed, shuffle=train, num_replicas=world, rank=rank)
        # data.augment: random transforms on the training split only, seeded from the recipe (issue 4)
        augment = split_collate(spec.augment, split=split, seed=self.recipe.seed, data=self.data)
        if self.uses_tensor_loader(dataset):
            return TensorLoader(
                dataset,
                batch_size=batch_size // world if train else batch_size,
                sampler=sampler if train or world > 1 else None,
                augment=augment,
                device=device,
                placed=self.placed,
            )
        return DataLoader(
            dataset,
            batch_size=batch_size // world if train else batch_size,
            sampler=sampler if train or world > 1 else None,
            generator=self.generator,
            num_workers=spec.num_workers,
            drop_last=False,
            collate_fn=augment,
        )

    def uses_tensor_loader(self, dataset: Any) -> bool:
        """data.loader: "auto" takes the tensor path for a tensor-backed split read without workers."""
        spec = self.recipe.data
        tensor_backed = tensor_source(dataset) is not None
        if spec.loader == "tensors":
            if not tensor_backed:
                raise ConfigError(
                    f"data.loader=tensors needs data held as tensors in memory; dataset '{spec.name}' gives a "
                    f"{type(dataset).__name__}; use data.loader=auto or dataloader"
                )
            if spec.num_workers:
                raise ConfigError(
                    f"data.loader=tensors makes batches in this process; data.num_workers={spec.num_workers} would do "
                    "nothing; set data.num_workers=0 or data.loader=dataloader"
                )
            return True
        return spec.loader == "auto" and tensor_backed and spec.num_workers == 0

    def probe_batch(self) -> Any:
        """The first training batch, collated as for validation (no augmentation), read without any RNG.

        For measuring a step before training (training/threads.py); None without a training split.
        """
        dataset = self.data.train
        if dataset is None or len(dataset) == 0:
            return None
        spec = self.recipe.data
        collate = split_collate(spec.augment, split="val", seed=self.recipe.seed, data=self.data) or default_collate
        return collate([dataset[i] for i in range(min(spec.batch_size, len(dataset)))])

    def build_optimizer(self) -> torch.optim.Optimizer:
        spec = self.recipe.optimizer
        factory = registry("optimizer").get(spec.name)
        kwargs = validate_component_kwargs(factory, spec.kwargs, path="optimizer")
        from deepstrata.optim.param_groups import GroupRule, parameter_groups

        lr_param = inspect.signature(factory).parameters.get("lr")
        base_lr = kwargs.get("lr", lr_param.default if lr_param is not None else None)
        groups = parameter_groups(
            self.model,
            base_lr=base_lr,
            decay_norm_and_bias=getattr(spec, "decay_norm_and_bias", False),
            rules=[GroupRule(**g.model_dump()) for g in getattr(spec, "param_groups", [])],
        )
        # What a task trains beside the model and the run does not save (a FitNets regressor)
        # steps with the same optimizer and schedule.
        for module in self.task.training_only_modules():
            groups += parameter_groups(module, base_lr=base_lr, decay_norm_and_bias=getattr(spec, "decay_norm_and_bias", False))
        return factory(groups, **kwargs)

    def build_scheduler(self, optimizer: torch.optim.Optimizer) -> Any:
        spec = self.recipe.scheduler
        if spec is None:
            return None
        factory = registry("scheduler").get(spec.name)
        kwargs = validate_component_kwargs(factory, spec.kwargs, path="scheduler")
        steps = self.num_training_steps()
        return factory(optimizer, steps, **kwargs)

    def num_training_steps(self) -> int:
        """Optimizer steps of the whole run (micro-batches / accumulate_grad_batches)."""
        batches = -(-len(self.data.train) // self.recipe.data.batch_size)
        per_epoch = -(-batches // self.recipe.trainer.accumulate_grad_batches)
        total = per_epoch * self.recipe.trainer.max_epochs
        return min(total, self.recipe.trainer.max_steps or total)


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch once, at the top of a run; return a generator for shuffling."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def build_model(recipe: Recipe, data: DataBundle) -> tuple[nn.Module, dict[str, Any]]:
    """Build the recipe's model; returns (model, the full keyword arguments used)."""
    factory = registry("model").get(recipe.model.name)
    accepted = inspect.signature(factory).parameters
    kwargs = {k: v for k, v in data.model_defaults().items() if k in accepted}
    kwargs.update(validate_component_kwargs(factory, recipe.model.kwargs, path="model"))
    return factory(**kwargs), kwargs


def build_component(kind: str, spec: Any, path: str, **injected: Any) -> Any:
    factory = registry(kind).get(spec.name)
    kwargs = validate_component_kwargs(factory, spec.kwargs, path=path)
    accepted = inspect.signature(factory).parameters
    # Injected values fill what the recipe left out; they never override the user's choice.
    kwargs.update({k: v for k, v in injected.items() if k in accepted and k not in kwargs})
    return factory(**kwargs)


def build_recipe_data(recipe: Recipe) -> DataBundle:
    """The recipe's data, split from its seed exactly as every run of it splits it."""
    spec = recipe.data
    return build_data(
        spec.name,
        seed=recipe.seed,
        val_fraction=spec.val_fraction,
        test_fraction=spec.test_fraction,
        dataset_kwargs=validate_component_kwargs(registry("dataset").get(spec.name), spec.kwargs, path="data"),
    )


def build_experiment(recipe: Recipe) -> Experiment:
    """Data first (bad data fails before anything is written), then model and task."""
    generator = seed_everything(recipe.seed)
    data = build_recipe_data(recipe)
    torch.manual_seed(recipe.seed)  # model initialisation does not depend on how much RNG the data used
    model, model_kwargs = build_model(recipe, data)

    task_spec = recipe.task or ComponentSpec(name=data.task)
    task_factory = registry("task").get(task_spec.name)
    task_kwargs = validate_component_kwargs(task_factory, task_spec.kwargs, path="task", injected=TASK_INJECTED)
    task_cls_defaults = _task_defaults(task_spec.name)
    loss_spec = recipe.loss or _spec(task_cls_defaults["loss"])
    metric_specs = recipe.metrics or [_spec(m) for m in task_cls_defaults["metrics"]]
    injected = {"num_classes": data.num_classes}
    loss = build_component("loss", loss_spec, "loss", **injected)
    metrics = {m.name: build_component("metric", m, f"metrics.{i}", **injected) for i, m in enumerate(metric_specs)}
    # Tasks that need the data itself (a vocabulary, a baseline fitted on the training split) take `data`.
    task_extra = {"data": data} if "data" in inspect.signature(task_factory).parameters else {}
    task = task_factory(model=model, loss=loss, metrics=metrics, **task_extra, **task_kwargs)

    resolved = recipe.model_copy(
        update={
            "task": ComponentSpec(name=task_spec.name, **task_spec.kwargs),
            "model": type(recipe.model).model_validate({"name": recipe.model.name, **model_kwargs}),
            "loss": loss_spec,
            "metrics": metric_specs,
        }
    )
    return Experiment(recipe=resolved, data=data, model=model, task=task, generator=generator)


def _spec(name: str) -> ComponentSpec:
    return ComponentSpec(name=name)


def _task_defaults(task_name: str) -> dict[str, Any]:
    """Default loss and metrics of a task: the task class's `default_loss`/`default_metrics`."""
    factory = registry("task").get(task_name)
    cls = inspect.signature(factory).return_annotation
    if isinstance(cls, str):
        cls = getattr(inspect.getmodule(factory), cls, None)
    return {"loss": getattr(cls, "default_loss", "mse"), "metrics": list(getattr(cls, "default_metrics", ()))}
