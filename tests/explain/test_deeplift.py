"""DeepLIFT, DeepLIFT-SHAP and GradientSHAP: equal to Captum, summation to delta, reused and in-place ReLUs, refusals."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from captum.attr import DeepLift, DeepLiftShap, GradientShap

from deepstrata.errors import UserError
from deepstrata.explain.base import make_explainer
from deepstrata.explain.deeplift import deeplift_ready, pick_background
from tests.explain.small_models import tiny_cnn, tiny_mlp, tiny_vit


def _batch(model=None):
    torch.manual_seed(2)
    model = model or tiny_cnn()
    x = torch.randn(5, 1, 8, 8)
    with torch.no_grad():
        target = model(x).argmax(1)
    return model, x, target


def _gap(model, x, reference, target):
    with torch.no_grad():
        return model(x).gather(1, target[:, None])[:, 0] - model(reference).gather(1, target[:, None])[:, 0]


def test_deeplift_equals_captum():
    model, x, target = _batch()
    ours = make_explainer("deeplift").attribute(model, x, target)
    theirs = DeepLift(model).attribute(x, baselines=torch.zeros_like(x), target=target)
    assert ours.shape == x.shape
    torch.testing.assert_close(ours, theirs.detach())


def test_deeplift_sums_to_delta_without_max_pooling():
    """Summation to delta is exact for ReLU networks; Captum's MaxPool rule is not (measured below)."""
    from deepstrata.models.cnn import small_cnn

    torch.manual_seed(0)
    model, x, target = _batch(small_cnn(widths=[4], norm="none", dropout=0.0).eval())  # conv-ReLU-conv-ReLU, no max-pool
    ours = make_explainer("deeplift").attribute(model, x, target)
    gap = _gap(model, x, torch.zeros_like(x), target)
    assert float(gap.abs().min()) > 1e-3
    torch.testing.assert_close(ours.flatten(1).sum(1), gap, atol=1e-6, rtol=1e-4)
    pooled, px, pt = _batch()
    delta = make_explainer("deeplift").attribute(pooled, px, pt).flatten(1).sum(1) - _gap(pooled, px, torch.zeros_like(px), pt)
    print(f"DeepLIFT through a max-pool (tiny small_cnn): max |sum - (F(x) - F(0))| = {float(delta.abs().max()):.2e}")


@pytest.mark.parametrize("background", ["noise", "batch"])
def test_deeplift_shap_and_gradient_shap_equal_captum_with_the_same_background(background):
    model, x, target = _batch()
    refs = pick_background("test", x, background, 16, 0.0, 0.15, 0)
    assert refs.shape == (16 if background == "noise" else 5, 1, 8, 8)
    ours = make_explainer("deeplift_shap", background=background).attribute(model, x, target)
    torch.testing.assert_close(ours, DeepLiftShap(model).attribute(x, baselines=refs, target=target).detach())
    torch.manual_seed(0)
    np.random.seed(0)  # Captum's GradientShap also draws from numpy
    theirs = GradientShap(model).attribute(x, baselines=refs, n_samples=20, stdevs=0.0, target=target)
    torch.testing.assert_close(make_explainer("gradient_shap", background=background).attribute(model, x, target), theirs.detach())


def test_background_batch_needs_two_inputs_and_the_default_noise_explains_one_input_as_in_any_batch():
    model, x, target = _batch()
    explainer = make_explainer("deeplift_shap", background="batch")
    assert "background='noise'" in explainer.why_not(model, x[:1])
    with pytest.raises(UserError, match="background='noise'"):
        explainer.attribute(model, x[:1], target[:1])
    alone = make_explainer("deeplift_shap").attribute(model, x[:1], target[:1])
    torch.testing.assert_close(alone, make_explainer("deeplift_shap").attribute(model, x, target)[:1])


def test_deeplift_on_a_resnet_with_reused_inplace_relus_works_on_a_copy():
    from deepstrata.models.resnet import resnet

    torch.manual_seed(0)
    model = resnet(num_classes=10, layers=[1, 1], widths=[4, 8]).eval()
    for m in model.modules():  # non-trivial batch-norm statistics
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    model, x, target = _batch(model)
    with pytest.raises(RuntimeError, match="used more than once"):
        DeepLift(model).attribute(x, baselines=torch.zeros_like(x), target=target)  # Captum on the model itself
    before = {k: v.clone() for k, v in model.state_dict().items()}
    ours = make_explainer("deeplift").attribute(model, x, target)
    # summation to delta holds only if every ReLU got DeepLIFT's rule: the copy is faithful
    torch.testing.assert_close(ours.flatten(1).sum(1), _gap(model, x, torch.zeros_like(x), target), atol=1e-5, rtol=1e-4)
    assert model.relu.inplace and all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    copy = deeplift_ready(model, x)
    assert copy is not model
    with torch.no_grad():
        torch.testing.assert_close(copy(x), model(x))


def test_deeplift_uses_the_model_itself_when_it_can():
    model, x, _ = _batch()
    assert deeplift_ready(model, x) is model


def test_deeplift_refuses_models_with_unruled_nonlinearities():
    x = torch.randn(2, 1, 8, 8)
    reason = make_explainer("deeplift").why_not(tiny_vit(), x)
    assert "LayerNorm" in reason and "integrated_gradients" in reason
    assert make_explainer("deeplift").why_not(tiny_mlp(), x) is None
    assert make_explainer("gradient_shap").why_not(tiny_vit(), x) is None


class _FunctionalGelu(torch.nn.Module):
    """A network whose non-linearity is a function call, which DeepLIFT's module rules cannot see."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.a, self.b = torch.nn.Linear(6, 32), torch.nn.Linear(32, 3)

    def forward(self, x):
        return self.b(torch.nn.functional.gelu(3 * self.a(x)))


def test_deeplift_warns_when_its_sums_miss_the_score_difference():
    import warnings

    x, target = torch.randn(8, 6) * 2, torch.zeros(8, dtype=torch.long)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        make_explainer("deeplift").attribute(_FunctionalGelu(), x, target)
    messages = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    assert any("as a function rather than a module" in m for m in messages), messages
    model, images, t = _batch()
    with warnings.catch_warnings(record=True) as clean:
        warnings.simplefilter("always")
        attributions = make_explainer("deeplift").attribute(model, images, t)
    # max-pooling's small error stays within the tolerance: no warning, and attributions shaped like the input
    assert [str(w.message) for w in clean] == []
    assert attributions.shape == images.shape