"""MixUp and CutMix: soft labels sum to one and match the mixing coefficient / the pasted area."""

from __future__ import annotations

import pytest
import torch

from deepstrata.losses.cross_entropy import CrossEntropy
from deepstrata.registry import TRANSFORMS


def test_mixup_mixes_inputs_and_labels_with_the_same_lambda() -> None:
    t = TRANSFORMS.get("mixup")(alpha=0.4, num_classes=5)
    x = torch.rand(16, 3, 4, 4)
    y = torch.arange(16) % 5
    torch.manual_seed(0)
    out, soft = t(x, y)
    lam = t.last_lam
    assert soft.shape == (16, 5) and torch.allclose(soft.sum(1), torch.ones(16))
    # Recover the partner of each example from its label row and check x and y share lam.
    torch.manual_seed(0)
    torch.distributions.Beta(0.4, 0.4).sample()
    perm = torch.randperm(16)
    torch.testing.assert_close(out, lam * x + (1 - lam) * x[perm])
    onehot = torch.nn.functional.one_hot(y, 5).float()
    torch.testing.assert_close(soft, lam * onehot + (1 - lam) * onehot[perm])
    own = soft[torch.arange(16), y]
    assert torch.all(own >= lam - 1e-6), "each example keeps at least lam of its own label"


def test_mixup_lambda_follows_beta_alpha_alpha() -> None:
    t = TRANSFORMS.get("mixup")(alpha=0.2, num_classes=3)
    torch.manual_seed(0)
    lams = torch.tensor([t.sample_lam() for _ in range(4000)])
    # Beta(0.2, 0.2): mean 1/2, variance 1 / (4 * (2 * 0.2 + 1)) = 0.1786, mass near 0 and 1.
    assert abs(float(lams.mean()) - 0.5) < 0.03 and abs(float(lams.var()) - 0.1786) < 0.015


def test_cutmix_label_weight_equals_the_pasted_area() -> None:
    t = TRANSFORMS.get("cutmix")(alpha=1.0, num_classes=2)
    # Class 0 images are all zeros, class 1 images all ones: the share of ones is the pasted area.
    x = torch.cat([torch.zeros(8, 1, 10, 10), torch.ones(8, 1, 10, 10)])
    y = torch.cat([torch.zeros(8, dtype=torch.long), torch.ones(8, dtype=torch.long)])
    for seed in range(20):
        torch.manual_seed(seed)
        out, soft = t(x, y)
        assert torch.allclose(soft.sum(1), torch.ones(16))
        share_of_ones = out.mean(dim=(1, 2, 3))
        torch.testing.assert_close(soft[:, 1], share_of_ones, atol=1e-6, rtol=0)
        assert set(out.unique().tolist()) <= {0.0, 1.0}, "cutmix pastes real pixels, it never blends"


def test_cutmix_mixes_the_unpermuted_weight_reported() -> None:
    t = TRANSFORMS.get("cutmix")(alpha=1.0, num_classes=4)
    torch.manual_seed(5)
    _, soft = t(torch.rand(6, 3, 8, 8), torch.tensor([0, 1, 2, 3, 0, 1]))
    own = soft[torch.arange(6), torch.tensor([0, 1, 2, 3, 0, 1])]
    assert torch.all(own >= t.last_lam - 1e-6)


def test_chained_mixing_keeps_probabilities_and_feeds_the_loss() -> None:
    mix, cut = TRANSFORMS.get("mixup")(num_classes=3), TRANSFORMS.get("cutmix")(num_classes=3)
    torch.manual_seed(0)
    x, y = mix(torch.rand(6, 1, 8, 8), torch.tensor([0, 1, 2, 0, 1, 2]))
    x, y = cut(x, y)
    assert torch.allclose(y.sum(1), torch.ones(6)) and (y >= 0).all()
    loss = CrossEntropy()(torch.zeros(6, 3, requires_grad=True), y)
    torch.testing.assert_close(loss, torch.log(torch.tensor(3.0)))


def test_mixing_needs_class_labels() -> None:
    with pytest.raises(ValueError, match="needs the number of classes"):
        TRANSFORMS.get("mixup")()
    with pytest.raises(ValueError, match="class indices"):
        TRANSFORMS.get("mixup")(num_classes=3)(torch.rand(4, 2), torch.rand(4))
