"""Occlusion, KernelSHAP and LIME: equal to calling Captum, on images (patch grid) and tables (feature-wise)."""

from __future__ import annotations

import torch
from captum.attr import KernelShap, Lime, Occlusion

from deepstrata.explain.base import make_explainer
from deepstrata.explain.perturbation import feature_mask
from tests.explain.small_models import tiny_cnn, tiny_mlp


def _batch():
    torch.manual_seed(3)
    model = tiny_cnn()
    x = torch.randn(3, 1, 8, 8)
    with torch.no_grad():
        target = model(x).argmax(1)
    return model, x, target


def test_feature_mask_is_a_grid_of_patches_over_all_channels():
    mask = feature_mask(torch.zeros(2, 3, 6, 8), patch=4)
    assert mask.shape == (1, 3, 6, 8) and int(mask.max()) == 3  # ceil(6/4) x ceil(8/4) patches
    assert (mask[0, 0] == mask[0, 2]).all() and mask[0, 0, 0, 0] == 0 and mask[0, 0, 5, 7] == 3
    assert feature_mask(torch.zeros(2, 5), patch=4).tolist() == [[0, 1, 2, 3, 4]]


def test_occlusion_equals_captum_on_images_and_tables():
    model, x, target = _batch()
    ours = make_explainer("occlusion").attribute(model, x, target)
    theirs = Occlusion(model).attribute(x, sliding_window_shapes=(1, 4, 4), strides=(1, 2, 2), baselines=0.0, target=target)
    torch.testing.assert_close(ours, theirs)
    table_model, rows = tiny_mlp(in_features=6), torch.randn(4, 6)
    t = torch.tensor([0, 1, 2, 3])
    ours = make_explainer("occlusion").attribute(table_model, rows, t)
    torch.testing.assert_close(ours, Occlusion(table_model).attribute(rows, sliding_window_shapes=(1,), strides=1, baselines=0.0, target=t))


def test_kernel_shap_and_lime_equal_captum_example_by_example():
    model, x, target = _batch()
    mask = feature_mask(x, 2)  # 16 patches: 2^16 coalitions > n_samples, so Captum's sampler runs
    for name, cls in (("kernel_shap", KernelShap), ("lime", Lime)):
        ours = make_explainer(name, n_samples=60, patch=2).attribute(model, x, target)
        torch.manual_seed(0)
        theirs = torch.cat([
            cls(model).attribute(x[i : i + 1], baselines=0.0, target=target[i : i + 1], feature_mask=mask, n_samples=60, perturbations_per_eval=50)
            for i in range(3)
        ])  # fmt: skip
        assert ours.shape == x.shape
        torch.testing.assert_close(ours, theirs)
        assert (ours[:, :, :2, :2] == ours[:, :, :1, :1]).all(), f"{name}: one value per patch"


def test_perturbation_methods_refuse_token_ids():
    reason = make_explainer("lime").why_not(tiny_mlp(), torch.zeros(2, 5, dtype=torch.long))
    assert "layer_integrated_gradients" in reason
