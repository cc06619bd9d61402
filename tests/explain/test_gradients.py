"""Gradient attributions: IG's completeness on a LeNet that reads MNIST, and each wrapper equal to Captum."""

from __future__ import annotations

import pytest
import torch
from captum.attr import GuidedBackprop, InputXGradient, IntegratedGradients, NoiseTunnel, Saliency

from deepstrata.explain.base import make_explainer
from tests.conftest import requires_shared_data
from tests.explain.small_models import tiny_cnn, trained_mnist_lenet


@pytest.fixture(scope="module")
def lenet():
    model, x, y, accuracy = trained_mnist_lenet()
    assert accuracy > 0.9, f"the briefly trained LeNet should read digits, got accuracy {accuracy:.2f}"
    return model, x[:16], y[:16]


@requires_shared_data("mnist")
def test_integrated_gradients_completeness_on_an_mnist_lenet(lenet):
    """Sundararajan et al. 2017: sum_i IG_i(x) = F(x) - F(x'), within 1% of |F(x) - F(x')| at 50 steps."""
    model, x, _ = lenet
    with torch.no_grad():
        target = model(x).argmax(1)
        baseline = torch.zeros_like(x)
        gap = model(x).gather(1, target[:, None])[:, 0] - model(baseline).gather(1, target[:, None])[:, 0]
    attributions = make_explainer("integrated_gradients", n_steps=50).attribute(model, x, target)
    assert attributions.shape == x.shape
    error = (attributions.flatten(1).sum(1) - gap).abs()
    assert (gap.abs() > 0.5).all(), "the test needs inputs whose score differs from the baseline's"
    print(f"IG completeness on {len(x)} MNIST images, 50 steps: worst relative error {float((error / gap.abs()).max()):.2e}")
    assert (error <= 0.01 * gap.abs()).all(), f"worst relative completeness error {float((error / gap.abs()).max()):.4f}"


def _batch(seed: int = 0):
    torch.manual_seed(seed)
    model = tiny_cnn()
    x = torch.randn(4, 1, 8, 8)
    with torch.no_grad():
        target = model(x).argmax(1)
    return model, x, target


def _captum_smoothgrad(model, x, target):
    torch.manual_seed(0)
    sigma = float(0.15 * (x.max() - x.min()))
    return NoiseTunnel(Saliency(model)).attribute(x, nt_type="smoothgrad", nt_samples=25, stdevs=sigma, target=target, abs=True)


CAPTUM = {
    "saliency": lambda m, x, t: Saliency(m).attribute(x, target=t, abs=True),
    "guided_backprop": lambda m, x, t: GuidedBackprop(m).attribute(x, target=t),
    "input_x_gradient": lambda m, x, t: InputXGradient(m).attribute(x, target=t),
    "integrated_gradients": lambda m, x, t: IntegratedGradients(m).attribute(x, baselines=torch.zeros_like(x), target=t, n_steps=50),
    "smoothgrad": _captum_smoothgrad,
}


@pytest.mark.parametrize("name", sorted(CAPTUM))
def test_gradient_wrapper_equals_captum(name):
    model, x, target = _batch()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    ours = make_explainer(name).attribute(model, x, target)
    theirs = CAPTUM[name](model, x, target)
    assert ours.shape == x.shape
    torch.testing.assert_close(ours, theirs.detach())
    assert not model.training and all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())


def test_smoothgrad_is_repeatable_and_leaves_the_random_state():
    model, x, target = _batch()
    torch.manual_seed(123)
    state = torch.random.get_rng_state()
    a = make_explainer("smoothgrad").attribute(model, x, target)
    assert torch.equal(torch.random.get_rng_state(), state)
    torch.testing.assert_close(a, make_explainer("smoothgrad").attribute(model, x, target))


def test_smoothgrad_around_integrated_gradients_runs():
    model, x, target = _batch()
    out = make_explainer("smoothgrad", around="integrated_gradients", samples=3, n_steps=8).attribute(model, x, target)
    assert out.shape == x.shape and torch.isfinite(out).all()


def test_guided_backprop_differs_from_the_gradient_and_refuses_models_without_relu_modules():
    from deepstrata.errors import UserError

    model, x, target = _batch()
    guided = make_explainer("guided_backprop").attribute(model, x, target)
    plain = make_explainer("saliency", absolute=False).attribute(model, x, target)
    assert not torch.allclose(guided, plain)  # the ReLUs' backward pass was changed
    gelu = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 8), torch.nn.GELU(), torch.nn.Linear(8, 3))
    with pytest.raises(UserError, match="no nn.ReLU modules"):
        make_explainer("guided_backprop").attribute(gelu, x, torch.zeros(4, dtype=torch.long))
