"""TCAV on a CNN trained to tell horizontal from vertical stripes: the stripe concept matters, a random one does not."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deepstrata.errors import UserError
from deepstrata.explain.base import make_explainer
from tests.explain.small_models import tiny_mlp, tiny_vit, train_briefly


def stripes(n: int, horizontal: bool, g: torch.Generator) -> torch.Tensor:
    """n 1x8x8 images of faint noise (multiples of 1/255, so PNG files hold them exactly) with one bright line."""
    x = torch.randint(0, 26, (n, 1, 8, 8), generator=g).float() / 255.0
    for i in range(n):
        k = int(torch.randint(0, 8, (1,), generator=g))
        if horizontal:
            x[i, 0, k, :] = 1.0
        else:
            x[i, 0, :, k] = 1.0
    return x


@pytest.fixture(scope="module")
def setting():
    from deepstrata.models.cnn import small_cnn

    g = torch.Generator().manual_seed(0)
    x = torch.cat([stripes(200, True, g), stripes(200, False, g)])
    y = torch.cat([torch.zeros(200), torch.ones(200)]).long()
    torch.manual_seed(0)
    model = train_briefly(small_cnn(widths=[4, 8], norm="none", dropout=0.0, num_classes=2), x, y, epochs=5)
    randoms = [torch.randint(0, 256, (40, 1, 8, 8), generator=g).float() / 255.0 for _ in range(11)]
    return model, stripes(40, True, g), randoms, stripes(50, True, g), stripes(50, False, g)


def test_the_stripe_concept_is_significant_for_its_class_and_a_random_concept_is_not(setting):
    model, concept, randoms, horizontal, vertical = setting
    tcav = make_explainer("tcav", stage=0)
    for_h = tcav.score(model, concept, randoms[:10], horizontal, 0)
    for_v = tcav.score(model, concept, randoms[:10], vertical, 1)
    chance = tcav.score(model, randoms[10], randoms[:10], horizontal, 0)
    print(f"TCAV horizontal-stripes concept: class horizontal {for_h.score:.2f} (p={for_h.p_value:.2g}), "
          f"class vertical {for_v.score:.2f} (p={for_v.p_value:.2g}); a random concept {chance.score:.2f} (p={chance.p_value:.2g})")  # fmt: skip
    assert for_h.significant and for_h.score > 0.9 and min(for_h.cav_accuracy) > 0.9
    assert for_v.significant and for_v.score < 0.1  # the concept lowers the other class's logit
    assert not chance.significant
    assert len(for_h.scores) == len(for_h.random_scores) == 9


def test_directional_derivative_equals_a_finite_difference_along_the_cav(setting):
    model, concept, randoms, horizontal, _ = setting
    tcav = make_explainer("tcav", stage=0)
    acts = tcav.activations(model, concept)
    cav, _ = tcav.cav(acts, tcav.activations(model, randoms[0]), seed=0)
    ours = tcav.directional_derivatives(model, horizontal[:5], 0, cav)
    stage = model.feature_stages()[0]
    eps = 1e-3

    def logit_moved(step: float) -> torch.Tensor:
        hook = stage.register_forward_hook(lambda m, a, out: out + step * cav.reshape(out.shape[1:]))
        try:
            with torch.no_grad():
                return model(horizontal[:5])[:, 0].double()
        finally:
            hook.remove()

    finite = (logit_moved(eps) - logit_moved(-eps)) / (2 * eps)
    np.testing.assert_allclose(ours.double().numpy(), finite.numpy(), rtol=2e-2, atol=1e-4)


def test_concepts_read_from_folders_score_as_the_same_tensors(setting, tmp_path):
    from PIL import Image

    model, concept, randoms, horizontal, _ = setting
    folders = []
    for name, images in [("concept", concept), *((f"random{i}", r) for i, r in enumerate(randoms[:3]))]:
        folder = tmp_path / name
        folder.mkdir()
        for j, image in enumerate(images):
            Image.fromarray((image[0] * 255).round().byte().numpy(), mode="L").save(folder / f"{j:03d}.png")
        folders.append(folder)
    tcav = make_explainer("tcav", stage=0)
    from_tensors = tcav.score(model, concept, randoms[:3], horizontal, 0)
    from_folders = tcav.score(model, folders[0], [str(f) for f in folders[1:]], horizontal, 0)
    assert from_folders.scores == from_tensors.scores and from_folders.p_value == from_tensors.p_value


def test_tcav_refuses_what_it_cannot_test(setting):
    model, concept, randoms, horizontal, _ = setting
    tcav = make_explainer("tcav")
    with pytest.raises(UserError, match="at least 3 random sets"):
        tcav.score(model, concept, randoms[:2], horizontal, 0)
    with pytest.raises(UserError, match="TCAV.score"):
        tcav.attribute(model, horizontal, torch.zeros(50, dtype=torch.long))
    assert "Backbone" in tcav.why_not(torch.nn.Sequential(torch.nn.Flatten()), horizontal)
    assert tcav.why_not(tiny_vit(), horizontal) is None and tcav.why_not(tiny_mlp(), horizontal) is None
