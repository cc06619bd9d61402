"""Capsule network: squash, routing by agreement, the margin loss's closed form, and a short digits run."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from deepstrata.losses.margin import MarginLoss
from deepstrata.models.capsnet import capsnet, dynamic_routing, squash
from tests.conftest import requires_shared_data


def test_squash_keeps_direction_and_bounds_length() -> None:
    gen = torch.Generator().manual_seed(0)
    s = torch.randn(100, 8, generator=gen) * torch.logspace(-3, 3, 100).unsqueeze(1)
    v = squash(s)
    n = s.norm(dim=-1)
    torch.testing.assert_close(v.norm(dim=-1), n.square() / (1 + n.square()) , rtol=1e-4, atol=1e-6)  # eq. 1
    assert (v.norm(dim=-1) < 1).all()
    cos = torch.nn.functional.cosine_similarity(v, s, dim=-1)
    torch.testing.assert_close(cos, torch.ones(100))
    assert v[0].norm() < 1e-5 and v[-1].norm() > 0.999  # short vectors shrink to ~0, long ones approach 1
    assert torch.isfinite(squash(torch.zeros(3, 8))).all()


def test_routing_couplings_sum_to_one_over_parents() -> None:
    gen = torch.Generator().manual_seed(0)
    u_hat = torch.randn(4, 30, 5, 16, generator=gen)
    for iterations in (1, 3):
        v, c = dynamic_routing(u_hat, iterations)
        assert v.shape == (4, 5, 16) and c.shape == (4, 30, 5)
        torch.testing.assert_close(c.sum(dim=2), torch.ones(4, 30))
    _, c1 = dynamic_routing(u_hat, 1)
    torch.testing.assert_close(c1, torch.full((4, 30, 5), 0.2))  # first iteration: uniform


def test_routing_sends_children_to_the_parent_they_agree_with() -> None:
    """20 children agree on parent 0 (similar predictions) and disagree on parent 1 (random
    predictions of the same size): every extra routing iteration moves coupling towards parent 0."""
    gen = torch.Generator().manual_seed(0)
    direction = torch.nn.functional.normalize(torch.randn(8, generator=gen), dim=0)
    u_hat = torch.empty(1, 20, 2, 8)
    u_hat[0, :, 0] = direction + 0.05 * torch.randn(20, 8, generator=gen)
    u_hat[0, :, 1] = torch.nn.functional.normalize(torch.randn(20, 8, generator=gen), dim=-1)
    share = [float(dynamic_routing(u_hat, r)[1][0, :, 0].mean()) for r in (1, 2, 3)]
    assert share[0] == pytest.approx(0.5) and share[0] < share[1] < share[2] and share[2] > 0.6, share
    v, _ = dynamic_routing(u_hat, 3)
    assert v[0, 0].norm() > v[0, 1].norm()


def test_class_capsules_equal_the_papers_equations_written_out() -> None:
    """The layer's batched layout (one bmm, a transposed view, reductions over the children)
    equals Procedure 1 written directly: u_hat = W u per child and parent, c = softmax(b) over
    parents, s = sum_i c u_hat, v = squash(s), b += u_hat . v; values and gradients."""
    from deepstrata.models.capsnet import ClassCapsules

    torch.manual_seed(0)
    layer = ClassCapsules(num_primary=12, primary_dim=4, num_classes=3, class_dim=5, iterations=3)
    features = torch.randn(6, 12 * 4, requires_grad=True)

    def reference(features: torch.Tensor) -> torch.Tensor:
        u = features.view(6, 12, 4)
        u_hat = torch.einsum("pkdi,npi->npkd", layer.weight, u)  # (N, P, K, D)
        b = torch.zeros(6, 12, 3)
        for i in range(3):
            c = torch.softmax(b, dim=2)
            v = squash(torch.einsum("npk,npkd->nkd", c, u_hat))
            if i < 2:
                b = b + torch.einsum("npkd,nkd->npk", u_hat, v)
        return v

    ours, ref = layer(features), reference(features)
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-6)
    g_ours = torch.autograd.grad(ours.square().sum(), [features, layer.weight])
    g_ref = torch.autograd.grad(ref.square().sum(), [features, layer.weight])
    for a, b in zip(g_ours, g_ref):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_margin_loss_matches_its_closed_form() -> None:
    lengths = torch.tensor([[0.95, 0.3, 0.05], [0.2, 0.6, 0.12]])
    target = torch.tensor([0, 2])
    # Image 0: true class 0 above m+ (0), class 1: 0.5*(0.3-0.1)^2, class 2 below m- (0).
    # Image 1: class 0: 0.5*(0.1)^2, class 1: 0.5*(0.5)^2, true class 2: (0.9-0.12)^2.
    expected = (0.5 * 0.2**2 + (0.5 * 0.1**2 + 0.5 * 0.5**2 + 0.78**2)) / 2
    loss = MarginLoss(reconstruction_weight=0.0)(lengths, target)
    assert math.isclose(float(loss), expected, rel_tol=1e-6)


def test_margin_loss_adds_weighted_summed_squared_reconstruction_error() -> None:
    lengths, target = torch.tensor([[0.9, 0.1]]), torch.tensor([0])  # margin part is exactly 0
    images, recon = torch.zeros(1, 1, 2, 2), torch.full((1, 1, 2, 2), 0.5)
    loss = MarginLoss(reconstruction_weight=0.0005)(lengths, target, reconstruction=recon, images=images)
    assert math.isclose(float(loss), 0.0005 * 4 * 0.25, rel_tol=1e-6)


def test_margin_loss_errors() -> None:
    with pytest.raises(ValueError, match="m_minus < m_plus"):
        MarginLoss(m_plus=0.1, m_minus=0.9)
    with pytest.raises(ValueError, match=r"lengths \(N, K\) and labels \(N,\), got \(3,\) and \(3,\)"):
        MarginLoss()(torch.rand(3), torch.zeros(3, dtype=torch.long))


def small() -> torch.nn.Module:
    return capsnet(num_classes=10, image_size=8, conv_channels=16, conv_kernel=3, primary_maps=4, primary_kernel=3, primary_stride=1, decoder_hidden=[32])


def test_capsnet_shapes_lengths_and_reconstruction() -> None:
    torch.manual_seed(0)
    model = small()
    x = torch.rand(3, 1, 8, 8)
    caps = model.capsules(x)
    assert caps.shape == (3, 10, 16)
    lengths = model(x)
    torch.testing.assert_close(lengths, caps.norm(dim=-1))
    assert ((lengths >= 0) & (lengths < 1)).all()
    recon = model.reconstruct(caps, torch.tensor([1, 2, 3]))
    assert recon.shape == x.shape and ((recon > 0) & (recon < 1)).all()
    # The decoder only sees the chosen class's capsule: changing another capsule changes nothing.
    other = caps.clone()
    other[0, 5] += 1.0
    torch.testing.assert_close(model.reconstruct(other, torch.tensor([1, 2, 3])), recon)


def test_capsnet_paper_defaults_on_mnist_sized_input() -> None:
    model = capsnet()  # Sabour et al.: 256 conv maps 9x9, 32 x 8-D primary maps 9x9 stride 2, 10 x 16-D
    assert model.head.num_primary == 32 * 6 * 6 == 1152
    assert model.head.weight.shape == (1152, 10, 16, 8)


def test_capsnet_shape_errors_name_layer_and_shapes() -> None:
    with pytest.raises(ValueError, match=r"CapsNet.conv expected \(N, 1, 8, 8\) input, got \(2, 1, 28, 28\)"):
        small()(torch.rand(2, 1, 28, 28))
    with pytest.raises(ValueError, match="too small"):
        capsnet(image_size=8)


def test_capsule_task_requires_a_capsule_model() -> None:
    from deepstrata.losses.margin import margin
    from deepstrata.tasks.capsule import capsule_classification

    with pytest.raises(ValueError, match=r"needs a capsule model.*no capsules\(\), reconstruct\(\)"):
        capsule_classification(model=torch.nn.Linear(2, 2), loss=margin(), metrics={})


@pytest.mark.e2e
def test_digits_capsnet_short_run(tmp_path: Path) -> None:
    """4 of the recipe's 30 epochs: an honest floor (measured 0.936 and 0.967 for seeds 0 and 1; full length 0.989)."""
    import deepstrata.api as api

    recipe = Path(__file__).resolve().parents[2] / "recipes" / "digits_capsnet.yaml"
    result = api.train(recipe, ["trainer.max_epochs=4", "trainer.num_threads=1", f"output_dir={tmp_path}"])
    assert result.metrics["test/accuracy"] >= 0.90, result.metrics


@requires_shared_data("mnist")
@pytest.mark.e2e
def test_mnist_capsnet_recipe_learns(tmp_path: Path) -> None:
    """12 steps on 1,500 images (measured 0.63 on the official test set): the MNIST recipe builds and learns.

    The issue's full-length floor (>= 99.2% in <= 5 min of training) was not measured here.
    """
    import deepstrata.api as api

    recipe = Path(__file__).resolve().parents[2] / "recipes" / "mnist_capsnet.yaml"
    result = api.train(recipe, ["data.limit=1500", "trainer.max_steps=12", "scheduler.warmup_steps=2", "trainer.num_threads=1", f"output_dir={tmp_path}"])
    assert result.metrics["test/accuracy"] >= 0.5, result.metrics
