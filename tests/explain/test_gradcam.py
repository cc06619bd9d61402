"""Grad-CAM equal to its written-out definition and to Captum's LayerGradCam; Guided Grad-CAM to Captum's."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from captum.attr import GuidedGradCam, LayerAttribution, LayerGradCam

from deepstrata.explain.base import make_explainer
from tests.explain.small_models import tiny_cnn, tiny_mlp, tiny_vit


def _batch():
    torch.manual_seed(1)
    model = tiny_cnn()
    x = torch.randn(3, 1, 8, 8)
    target = torch.tensor([0, 3, 7])
    return model, x, target


def test_grad_cam_equals_the_gradient_weighted_sum_written_out():
    model, x, target = _batch()
    ours = make_explainer("grad_cam").attribute(model, x, target)
    # By hand: the last stage's map A, the target logits from it through the head, autograd for dy/dA.
    a = model.features(x)  # small_cnn's last stage output is the end of `features`
    a.retain_grad()
    model.forward_head(a).gather(1, target[:, None]).sum().backward()
    expected = torch.zeros(3, 1, a.shape[2], a.shape[3])
    for n in range(3):
        for k in range(a.shape[1]):
            w = a.grad[n, k].sum() / (a.shape[2] * a.shape[3])
            expected[n, 0] += w * a[n, k].detach()
    expected = F.interpolate(expected.clamp(min=0), size=(8, 8), mode="bilinear", align_corners=False)
    model.zero_grad(set_to_none=True)
    assert ours.shape == (3, 1, 8, 8)
    torch.testing.assert_close(ours, expected)
    assert float(ours.abs().sum()) > 0


def test_grad_cam_equals_captum_layer_grad_cam_on_the_same_layer():
    model, x, target = _batch()
    for stage in (0, -1):
        ours = make_explainer("grad_cam", stage=stage).attribute(model, x, target)
        layer = model.feature_stages()[stage]
        cam = LayerGradCam(model, layer).attribute(x, target=target, relu_attributions=True)
        theirs = LayerAttribution.interpolate(cam, (8, 8), interpolate_mode="bilinear")
        torch.testing.assert_close(ours, theirs.detach())


def test_guided_grad_cam_equals_captum():
    """Captum's GuidedGradCam on the same layer, upsampling bilinearly as ours does (its default is nearest)."""
    model, x, target = _batch()
    ours = make_explainer("guided_grad_cam").attribute(model, x, target)
    theirs = GuidedGradCam(model, model.feature_stages()[-1]).attribute(x, target=target, interpolate_mode="bilinear")
    assert ours.shape == x.shape and float(ours.abs().sum()) > 0
    torch.testing.assert_close(ours, theirs.detach())


def test_grad_cam_refuses_models_without_a_feature_map():
    x = torch.randn(2, 1, 8, 8)
    explainer = make_explainer("grad_cam")
    assert "NC" in explainer.why_not(tiny_mlp(), x)
    assert "attention_rollout" in explainer.why_not(tiny_vit(), x)
    assert "Backbone" in explainer.why_not(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10)), x)
    assert explainer.why_not(tiny_cnn(), x) is None
    assert "stage" in make_explainer("grad_cam", stage=5).why_not(tiny_cnn(), x)


def test_grad_cam_equals_captum_on_lenet_and_resnet_last_stages():
    from deepstrata.models.lenet import lenet5
    from deepstrata.models.resnet import resnet

    torch.manual_seed(0)
    for model, x in ((lenet5().eval(), torch.rand(2, 1, 28, 28)), (resnet(num_classes=10, layers=[1, 1], widths=[4, 8]).eval(), torch.randn(2, 1, 8, 8))):
        target = torch.tensor([1, 2])
        ours = make_explainer("grad_cam").attribute(model, x, target)
        cam = LayerGradCam(model, model.feature_stages()[-1]).attribute(x, target=target, relu_attributions=True)
        torch.testing.assert_close(ours, LayerAttribution.interpolate(cam, tuple(x.shape[-2:]), interpolate_mode="bilinear").detach())
        assert ours.shape == (2, 1, *x.shape[-2:])
