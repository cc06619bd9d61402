"""Image augmentations: shape, dtype and range kept; a fixed seed repeats; each does what it says."""

from __future__ import annotations

import pickle

import pytest
import torch

from deepstrata.registry import TRANSFORMS

RANDOM_IMAGE_TRANSFORMS = {
    "random_crop": {"padding": 2},
    "horizontal_flip": {"p": 0.5},
    "random_affine": {"degrees": 15.0},
    "color_jitter": {"brightness": 0.3, "contrast": 0.3, "saturation": 0.3, "hue": 0.05},
    "random_erasing": {"p": 1.0},
}


def images(n: int = 8, c: int = 3, size: int = 12, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, c, size, size, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("name", sorted(RANDOM_IMAGE_TRANSFORMS))
def test_keeps_shape_dtype_range_and_labels(name: str) -> None:
    t = TRANSFORMS.get(name)(**RANDOM_IMAGE_TRANSFORMS[name])
    x, y = images(), torch.arange(8)
    torch.manual_seed(0)
    out, y_out = t(x, y)
    assert out.shape == x.shape and out.dtype == x.dtype and y_out is y
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    assert not torch.equal(out, x), f"{name} changed nothing"


@pytest.mark.parametrize("name", sorted(RANDOM_IMAGE_TRANSFORMS))
def test_fixed_seed_same_output_other_seed_other_output(name: str) -> None:
    t = TRANSFORMS.get(name)(**RANDOM_IMAGE_TRANSFORMS[name])
    x, y = images(), torch.arange(8)
    outs = []
    for seed in (1, 1, 2):
        torch.manual_seed(seed)
        outs.append(t(x, y)[0])
    assert torch.equal(outs[0], outs[1])
    assert not torch.equal(outs[0], outs[2])


def test_transforms_pickle_for_dataloader_workers() -> None:
    for name, kwargs in RANDOM_IMAGE_TRANSFORMS.items():
        t = TRANSFORMS.get(name)(**kwargs)
        t(images(), torch.arange(8))  # built lazily: pickling must work after first use too
        clone = pickle.loads(pickle.dumps(t))
        torch.manual_seed(3)
        a = t(images(), torch.arange(8))[0]
        torch.manual_seed(3)
        assert torch.equal(a, clone(images(), torch.arange(8))[0]), name


def test_flip_mirrors_exactly() -> None:
    x = images()
    torch.manual_seed(0)
    out, _ = TRANSFORMS.get("horizontal_flip")(p=1.0)(x, torch.arange(8))
    assert torch.equal(out, x.flip(-1))


def test_random_crop_is_a_shifted_window_of_the_padded_image() -> None:
    x = images(n=4, c=1, size=6)
    torch.manual_seed(0)
    out, _ = TRANSFORMS.get("random_crop")(padding=2)(x, torch.arange(4))
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for i in range(4):
        windows = [padded[i, :, dy : dy + 6, dx : dx + 6] for dy in range(5) for dx in range(5)]
        assert any(torch.allclose(out[i], w) for w in windows), i


def test_random_erasing_blanks_a_bounded_rectangle() -> None:
    x = images() + 0.5  # no zeros in the input: every zero in the output was erased
    x = x.clamp(max=1.0)
    torch.manual_seed(0)
    out, _ = TRANSFORMS.get("random_erasing")(p=1.0, scale=(0.1, 0.2))(x, torch.arange(8))
    erased = (out == 0).all(dim=1).float().mean(dim=(1, 2))  # share of pixels zeroed per image
    assert torch.all(erased > 0.05) and torch.all(erased < 0.3)


def test_color_jitter_on_grey_images_refuses_saturation() -> None:
    with pytest.raises(ValueError, match="saturation and hue need RGB images"):
        TRANSFORMS.get("color_jitter")(saturation=0.2)(images(c=1), torch.arange(8))
    out, _ = TRANSFORMS.get("color_jitter")()(images(c=1), torch.arange(8))
    assert out.shape == (8, 1, 12, 12)


def test_normalize_matches_the_formula_and_applies_to_every_split() -> None:
    t = TRANSFORMS.get("normalize")(mean=[0.5, 0.4, 0.3], std=[0.2, 0.25, 0.5])
    x = images()
    out, _ = t(x, torch.arange(8))
    mean, std = torch.tensor([0.5, 0.4, 0.3]).view(1, 3, 1, 1), torch.tensor([0.2, 0.25, 0.5]).view(1, 3, 1, 1)
    torch.testing.assert_close(out, (x - mean) / std)
    assert t.every_split and t.input_spec_update() == {"normalize": {"mean": [0.5, 0.4, 0.3], "std": [0.2, 0.25, 0.5]}}
    with pytest.raises(ValueError, match="every std must be positive"):
        TRANSFORMS.get("normalize")(mean=[0.0], std=[0.0])


def test_image_transforms_reject_non_images_with_the_shape() -> None:
    with pytest.raises(ValueError, match=r"random_crop expects image batches of shape \(N, C, H, W\), got \(8, 4\)"):
        TRANSFORMS.get("random_crop")()(torch.rand(8, 4), torch.arange(8))
