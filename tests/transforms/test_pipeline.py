"""data.augment in a recipe: training batches only, seeded from the recipe, model RNG untouched."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import deepstrata.api as api
from deepstrata.config import ComponentSpec, load_recipe
from deepstrata.errors import ConfigError
from deepstrata.experiment import build_experiment
from deepstrata.registry import TRANSFORMS
from deepstrata.transforms.pipeline import AugmentCollate


def _batches(loader, n=3):
    out = []
    for i, (x, y) in enumerate(loader):
        out.append((x, y))
        if i + 1 == n:
            break
    return out


def test_collate_is_seeded_and_leaves_the_global_generator_alone() -> None:
    erase = TRANSFORMS.get("random_erasing")(p=1.0)
    samples = [(torch.rand(1, 8, 8, generator=torch.Generator().manual_seed(i)), torch.tensor(i % 2)) for i in range(4)]
    torch.manual_seed(123)
    before = torch.get_rng_state()
    first, again = AugmentCollate([erase], seed=0)(samples)[0], AugmentCollate([erase], seed=0)(samples)[0]
    assert torch.equal(before, torch.get_rng_state()), "augmentation must not consume the model's random numbers"
    assert torch.equal(first, again)
    assert not torch.equal(first, AugmentCollate([erase], seed=1)(samples)[0]), "another recipe seed, other augmentation"
    assert not torch.equal(first, AugmentCollate([erase], seed=0)(samples[::-1])[0][[3, 2, 1, 0]]), "another batch, other augmentation"


def test_experiment_augments_training_batches_only(tiny_recipe: dict) -> None:
    tiny_recipe["data"]["augment"] = [{"name": "random_erasing", "p": 1.0, "value": 0.123}, {"name": "mixup", "alpha": 1.0}]
    exp = build_experiment(load_recipe(tiny_recipe))
    (x, y), *_ = _batches(exp.loader("train"), 1)
    assert y.shape == (64, 10) and torch.allclose(y.sum(1), torch.ones(64)), "mixup gave soft targets (num_classes from the data)"
    for split in ("val", "test"):
        xv, yv = next(iter(exp.loader(split)))
        assert yv.dim() == 1 and not (xv == 0.123).any(), f"{split} batches must not be augmented"


def test_same_recipe_same_augmented_batches(tiny_recipe: dict) -> None:
    tiny_recipe["data"]["augment"] = [{"name": "random_crop", "padding": 1}, "horizontal_flip"]
    runs = []
    for _ in range(2):
        exp = build_experiment(load_recipe(tiny_recipe))
        runs.append(_batches(exp.loader("train")))
    for (xa, ya), (xb, yb) in zip(*runs):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    tiny_recipe["seed"] = 1
    other = _batches(build_experiment(load_recipe(tiny_recipe)).loader("train"))
    assert not torch.equal(other[0][0], runs[0][0][0])


def test_same_batches_with_or_without_worker_processes(tiny_recipe: dict) -> None:
    tiny_recipe["data"]["augment"] = [{"name": "random_affine", "degrees": 20.0}]
    tiny_recipe["data"]["loader"] = "dataloader"  # the tensor path (tests/data/test_tensor_loader.py) has no workers
    in_process = _batches(build_experiment(load_recipe(tiny_recipe)).loader("train"), 2)
    tiny_recipe["data"]["num_workers"] = 1
    in_worker = _batches(build_experiment(load_recipe(tiny_recipe)).loader("train"), 2)
    for (xa, ya), (xb, yb) in zip(in_process, in_worker):
        assert torch.equal(ya, yb) and torch.equal(xa, xb)


def test_unknown_transform_and_bad_argument_fail_at_validation(tiny_recipe: dict) -> None:
    tiny_recipe["data"]["augment"] = ["random_flip"]
    with pytest.raises(ConfigError, match="did you mean"):
        load_recipe(tiny_recipe)
    tiny_recipe["data"]["augment"] = [{"name": "random_crop", "pading": 2}]
    with pytest.raises(ConfigError, match=r"data\.augment\.0\.pading: unknown key; did you mean padding"):
        load_recipe(tiny_recipe)


@pytest.mark.e2e
def test_normalize_is_recorded_and_replayed_at_prediction(tiny_recipe: dict, tmp_path: Path) -> None:
    tiny_recipe["data"]["augment"] = [{"name": "normalize", "mean": [0.3], "std": [0.4]}, {"name": "random_crop", "padding": 1}, {"name": "mixup", "alpha": 0.2}]
    tiny_recipe["trainer"].update(max_epochs=3, num_threads=1)
    result = api.train(tiny_recipe)
    # Measured 0.78-0.83 over seeds 0-2 (0.95 without augmentation: 3 epochs are too few for
    # augmentation to pay off on digits); chance is 0.1.
    assert result.metrics["test/accuracy"] > 0.7, result.metrics
    predictor = api.load(result.run_dir)
    assert predictor.input_spec["normalize"] == {"mean": [0.3], "std": [0.4]}
    exp = build_experiment(load_recipe(result.run_dir / "config.yaml"))
    x, _ = next(iter(exp.loader("test")))  # normalised by the loader
    raw = x * 0.4 + 0.3  # back to the dataset's [0, 1] scale...
    raw = raw * 16.0  # ...and to the raw 0..16 grey levels that predict() takes
    torch.testing.assert_close(predictor.preprocess(raw.numpy()), x, atol=1e-5, rtol=1e-5)
    assert ComponentSpec(name="normalize").name in {s.name for s in exp.recipe.data.augment}


def test_transform_that_does_not_fit_the_data_fails_before_training(tiny_recipe: dict) -> None:
    tiny_recipe["data"] = {"name": "iris", "augment": ["random_crop"]}
    tiny_recipe["model"] = {"name": "mlp"}
    exp = build_experiment(load_recipe(tiny_recipe))
    with pytest.raises(ConfigError, match=r"data\.augment\.0 \(random_crop\) does not fit this data: random_crop expects image batches"):
        exp.loader("train")
    tiny_recipe["data"]["augment"] = [{"name": "mixup", "alpha": -1.0}]
    with pytest.raises(ConfigError, match=r"data\.augment\.0 \(mixup\): mixup: alpha must be positive"):
        build_experiment(load_recipe(tiny_recipe)).loader("train")


def test_token_transforms_apply_to_inputs_alone() -> None:
    """Registered transforms that are not BatchTransforms (token_deletion) see x only; y passes through."""
    from deepstrata.transforms.pipeline import apply_one

    tokens = torch.arange(10, 30).reshape(2, 10)
    x, y = apply_one(TRANSFORMS.get("token_swap")(p=0.5), tokens, torch.tensor([0, 1]))
    assert x.shape == tokens.shape and torch.equal(y, torch.tensor([0, 1]))
    assert sorted(x[0].tolist()) == tokens[0].tolist(), "a swap keeps the multiset of tokens"
