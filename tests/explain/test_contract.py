"""Every registered explainer, generated from the registry: builds with defaults, applies or says why not.

On a small CNN, an MLP and a ViT (1x8x8 images, four of them) and a BERT classifier (token ids
with padding): an explainer that applies returns a
finite tensor that broadcasts against x (x's shape, (N, 1, H, W), or (N, T) for token methods),
leaves the model's parameters, mode and gradients untouched and the caller's random state as it
was; one that does not apply gives a reason in words, and `attribute` refuses with it.
"""

from __future__ import annotations

import pytest
import torch

from deepstrata.errors import UserError
from deepstrata.explain.base import EXPLAINERS, Explainer, make_explainer
from tests.explain.small_models import tiny_bert, tiny_cnn, tiny_mlp, tiny_vit

MODELS = {"small_cnn": tiny_cnn, "mlp": tiny_mlp, "vit": tiny_vit, "bert_classifier": tiny_bert}


def _inputs(model_name: str) -> torch.Tensor:
    """Four 1x8x8 images, or four token-id rows (with padding) for the text model."""
    torch.manual_seed(0)
    if model_name == "bert_classifier":
        return torch.tensor([[5, 6, 7, 8, 0, 0], [9, 10, 11, 12, 13, 14], [4, 4, 0, 0, 0, 0], [7, 8, 9, 10, 11, 0]])
    return torch.randn(4, 1, 8, 8)


def _broadcasts(a: torch.Tensor, x: torch.Tensor) -> bool:
    try:
        return torch.broadcast_shapes(a.shape, x.shape) == x.shape and a.shape[0] == x.shape[0]
    except RuntimeError:
        return False


@pytest.mark.parametrize("model_name", sorted(MODELS))
@pytest.mark.parametrize("name", EXPLAINERS.names())
def test_every_explainer_applies_or_refuses_with_a_reason(name, model_name):
    explainer = make_explainer(name)
    assert isinstance(explainer, Explainer) and EXPLAINERS.get(name).__doc__
    model = MODELS[model_name]()
    x = _inputs(model_name)
    target = torch.tensor([0, 1, 2, 0])
    reason = explainer.why_not(model, x)
    if explainer.needs == "concepts":  # TCAV scores concepts rather than attributing inputs
        assert hasattr(explainer, "score")
        return
    if reason is not None:
        assert isinstance(reason, str) and len(reason) > 20
        assert not explainer.applies(model, x)
        with pytest.raises(UserError):
            explainer.attribute(model, x, target)
        return
    before = {k: v.clone() for k, v in model.state_dict().items()}
    state = torch.random.get_rng_state()
    out = explainer.attribute(model, x, target)
    assert isinstance(out, torch.Tensor) and torch.is_floating_point(out) and not out.requires_grad
    assert _broadcasts(out, x), f"{name} on {model_name}: {tuple(out.shape)} does not broadcast against {tuple(x.shape)}"
    assert torch.isfinite(out).all()
    assert not model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())
    assert torch.equal(torch.random.get_rng_state(), state)


def test_the_registry_holds_the_issues_methods():
    wanted = {
        "saliency", "input_x_gradient", "integrated_gradients", "smoothgrad", "deeplift", "gradient_shap", "deeplift_shap",
        "kernel_shap", "lime", "occlusion", "grad_cam", "guided_grad_cam", "exact_shapley", "attention", "attention_rollout",
        "layer_integrated_gradients",
    }  # fmt: skip
    assert wanted <= set(EXPLAINERS.names())


def test_the_issues_short_names_resolve():
    from deepstrata.tools.explain import resolve_method

    assert resolve_method("ig") == "integrated_gradients" and resolve_method("gradcam") == "grad_cam"
    aliases = [a for n in EXPLAINERS.names() for a in EXPLAINERS.meta(n).get("aliases", ())]
    assert len(aliases) == len(set(aliases)) and not set(aliases) & set(EXPLAINERS.names())
