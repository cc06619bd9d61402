"""data.loader: the tensor path gives the DataLoader's batches, resumes exactly, and is chosen as documented."""

from __future__ import annotations

import pytest
import torch

import deepstrata.api as api
from deepstrata.config import load_recipe
from deepstrata.data.tensor_loader import TensorLoader
from deepstrata.errors import ConfigError
from deepstrata.experiment import build_experiment


def _experiment(recipe: dict, loader: str, **data):
    recipe["data"].update(loader=loader, **data)
    return build_experiment(load_recipe(recipe))


def _all(loader) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(x, y) for x, y in loader]


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_without_augmentation_the_batches_are_the_dataloaders(tiny_recipe: dict, split: str) -> None:
    fast = _experiment(tiny_recipe, "tensors").loader(split)
    slow = _experiment(tiny_recipe, "dataloader").loader(split)
    assert isinstance(fast, TensorLoader) and not isinstance(slow, TensorLoader)
    assert len(fast) == len(slow)
    for epoch in (0, 3):  # each epoch's shuffled order, as the trainer sets it
        for loader in (fast, slow):
            if hasattr(loader.sampler, "set_position"):  # the training split's; evaluation reads in order
                loader.sampler.set_position(epoch, 0)
        pairs = list(zip(_all(fast), _all(slow), strict=True))
        for (xa, ya), (xb, yb) in pairs:
            assert torch.equal(xa, xb) and torch.equal(ya, yb)


def test_augmented_batches_are_seeded_resumable_and_leave_the_model_rng_alone(tiny_recipe: dict) -> None:
    tiny_recipe["data"]["augment"] = [{"name": "random_crop", "padding": 2}, {"name": "random_erasing", "p": 0.5}]
    loader = _experiment(tiny_recipe, "tensors").loader("train")
    torch.manual_seed(7)
    before = torch.get_rng_state()
    first = _all(loader)
    assert torch.equal(before, torch.get_rng_state()), "augmentation must not consume the model's random numbers"
    again = _all(_experiment(tiny_recipe, "tensors").loader("train"))
    for (xa, ya), (xb, yb) in zip(first, again, strict=True):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    plain = _all(_experiment(tiny_recipe, "dataloader", augment=[]).loader("train"))
    assert not torch.equal(first[0][0], plain[0][0]), "the batch was augmented"
    assert torch.equal(first[0][1], plain[0][1]), "augmentation keeps the rows and their labels"
    # A resume two batches into the epoch sees exactly the batches it had not seen.
    loader.sampler.set_position(0, 2 * loader.batch_size)
    resumed = _all(loader)
    assert len(resumed) == len(first) - 2
    for (xa, ya), (xb, yb) in zip(first[2:], resumed, strict=True):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)


def test_auto_picks_tensors_for_tensor_data_without_workers(tiny_recipe: dict) -> None:
    assert isinstance(_experiment(tiny_recipe, "auto").loader("train"), TensorLoader)
    assert not isinstance(_experiment(tiny_recipe, "auto", num_workers=1).loader("train"), TensorLoader)


def test_tensors_with_workers_or_non_tensor_data_fail_with_what_to_do(tiny_recipe: dict) -> None:
    with pytest.raises(ConfigError, match="data.num_workers=0 or data.loader=dataloader"):
        _experiment(tiny_recipe, "tensors", num_workers=2).loader("train")
    tiny_recipe.update(data={"name": "karate"}, model={"name": "gcn"}, metrics=[], trainer={"progress": "off"})
    with pytest.raises(ConfigError, match="data.loader=tensors needs data held as tensors"):
        _experiment(tiny_recipe, "tensors").loader("train")


@pytest.mark.e2e
def test_a_run_trains_to_the_same_weights_on_either_path(tiny_recipe: dict) -> None:
    tiny_recipe["trainer"].update(max_epochs=2, num_threads=1)
    metrics = []
    for loader in ("tensors", "dataloader"):
        tiny_recipe["data"]["loader"] = loader
        metrics.append(api.train(tiny_recipe).metrics)
    assert metrics[0] == metrics[1]


def test_the_splits_of_one_experiment_share_one_device_copy_of_the_data(tiny_recipe: dict) -> None:
    exp = _experiment(tiny_recipe, "tensors")
    train, val = exp.loader("train", device="meta"), exp.loader("val", device="meta")  # "meta": a device that copies
    assert train.tensors[0].device.type == "meta"
    assert train.tensors[0] is val.tensors[0], "train and validation are Subsets of one TensorDataset: one copy"
    assert exp.loader("test", device="meta").tensors[0] is train.tensors[0]
    assert len(exp.placed) == 2, "inputs and targets, once each"
