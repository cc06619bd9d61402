"""Every registered loss against torch or its closed form, plus the gradient behaviour its docstring claims."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from deepstrata.registry import create

G = torch.Generator().manual_seed(0)


@pytest.fixture(autouse=True)
def float64():
    """Compare in float64; restore the previous default so other tests are unaffected."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def logits_labels(n=16, k=5, scale=2.0):
    return torch.randn(n, k, generator=G) * scale, torch.randint(0, k, (n,), generator=G)


def test_cross_entropy_label_smoothing_and_class_weights_closed_form():
    z, y = logits_labels()
    logp = F.log_softmax(z, 1)
    eps, k = 0.1, z.shape[1]
    smooth = -((1 - eps) * logp.gather(1, y[:, None]).squeeze(1) + eps / k * logp.sum(1)).mean()
    assert torch.allclose(create("loss", "cross_entropy", label_smoothing=eps)(z, y), smooth)
    w = torch.tensor([1.0, 2.0, 0.5, 3.0, 1.0])
    nll = -logp.gather(1, y[:, None]).squeeze(1)
    weighted = (w[y] * nll).sum() / w[y].sum()
    assert torch.allclose(create("loss", "cross_entropy", class_weights=w.tolist())(z, y), weighted.to(z.dtype))


def test_regression_losses_closed_forms():
    p, t = torch.randn(50, generator=G), torch.randn(50, generator=G) * 3
    e = p - t
    assert torch.allclose(create("loss", "mse")(p, t), (e**2).mean())
    assert torch.allclose(create("loss", "mae")(p, t), e.abs().mean())
    d = 0.7
    huber = torch.where(e.abs() < d, 0.5 * e**2, d * (e.abs() - 0.5 * d)).mean()
    assert torch.allclose(create("loss", "huber", delta=d)(p, t), huber)


def test_bce_with_logits_matches_torch_and_stays_finite_where_naive_form_fails():
    z = torch.randn(20, 3, generator=G) * 5
    y = (torch.rand(20, 3, generator=G) > 0.5).double()
    loss = create("loss", "bce_with_logits", pos_weight=2.5)
    ref = F.binary_cross_entropy_with_logits(z, y, pos_weight=torch.tensor(2.5))
    assert torch.allclose(loss(z, y), ref)
    # int labels with (N, K) logits mean one-vs-rest targets
    lab = torch.randint(0, 3, (20,), generator=G)
    assert torch.allclose(create("loss", "bce_with_logits")(z, lab), F.binary_cross_entropy_with_logits(z, F.one_hot(lab, 3).double()))
    # a confidently wrong logit: the fused form has loss = |z| and gradient sigmoid(z) - y = -1
    big = torch.tensor([-200.0], requires_grad=True)
    out = create("loss", "bce_with_logits")(big, torch.tensor([1.0]))
    out.backward()
    assert math.isclose(out.item(), 200.0, rel_tol=1e-9) and math.isclose(big.grad.item(), -1.0, rel_tol=1e-9)
    naive = -torch.log(torch.sigmoid(big.detach().float()))  # float32 sigmoid underflows to 0
    assert not torch.isfinite(naive).all()


def test_focal_equals_closed_form_and_reduces_to_cross_entropy():
    z, y = logits_labels()
    p = F.softmax(z, 1).gather(1, y[:, None]).squeeze(1)
    alpha = [0.25, 1.0, 0.5, 2.0, 1.0]
    closed = (-torch.tensor(alpha)[y] * (1 - p) ** 2 * torch.log(p)).mean()
    assert torch.allclose(create("loss", "focal", gamma=2.0, alpha=alpha)(z, y), closed)
    assert torch.allclose(create("loss", "focal", gamma=0.0)(z, y), F.cross_entropy(z, y))


def test_focal_down_weights_easy_examples_gradient():
    """An easy example (p_y ~ 0.99) gets a far smaller share of the gradient under focal than under CE."""
    z = torch.tensor([[6.0, 0.0, 0.0], [0.2, 0.0, 0.0]], requires_grad=True)  # easy, hard
    y = torch.tensor([0, 0])
    ce_grad = torch.autograd.grad(F.cross_entropy(z, y), z)[0].norm(dim=1)
    fl_grad = torch.autograd.grad(create("loss", "focal", gamma=2.0)(z, y), z)[0].norm(dim=1)
    assert fl_grad[0] / fl_grad[1] < 0.01 * ce_grad[0] / ce_grad[1]


def test_hinge_matches_torch_multimargin_and_is_flat_beyond_margin():
    z, y = logits_labels()
    for p in (1, 2):
        assert torch.allclose(create("loss", "hinge", margin=1.0, power=p)(z, y), F.multi_margin_loss(z, y, p=p, margin=1.0))
    safe = torch.tensor([[5.0, 0.0, 1.0]], requires_grad=True)
    create("loss", "hinge")(safe, torch.tensor([0])).backward()
    assert torch.count_nonzero(safe.grad) == 0


def test_kl_divergence_matches_torch_and_is_zero_at_the_target():
    z = torch.randn(8, 4, generator=G)
    q = F.softmax(torch.randn(8, 4, generator=G), 1)
    kl = create("loss", "kl_divergence")
    assert torch.allclose(kl(z, q), F.kl_div(F.log_softmax(z, 1), q, reduction="batchmean"))
    assert kl(torch.log(q), q).abs() < 1e-12
    onehot = F.one_hot(torch.tensor([1, 2]), 4).double()
    assert torch.allclose(kl(z[:2], onehot), F.cross_entropy(z[:2], torch.tensor([1, 2])))


def test_info_nce_closed_form_and_symmetric():
    z1, z2 = torch.randn(6, 5, generator=G), torch.randn(6, 5, generator=G)
    tau = 0.2
    a, b = F.normalize(z1, dim=1), F.normalize(z2, dim=1)
    s = a @ b.T / tau
    closed = torch.stack([-(s[i, i] - torch.logsumexp(s[i], 0)) for i in range(6)]).mean()
    assert torch.allclose(create("loss", "info_nce", temperature=tau)(z1, z2), closed)
    closed_t = torch.stack([-(s[i, i] - torch.logsumexp(s[:, i], 0)) for i in range(6)]).mean()
    assert torch.allclose(create("loss", "info_nce", temperature=tau, symmetric=True)(z1, z2), (closed + closed_t) / 2)
    # aligned views score better than random ones
    assert create("loss", "info_nce")(z1, z1 + 0.01 * z2) < create("loss", "info_nce")(z1, z2)


def test_nt_xent_closed_form():
    z1, z2 = torch.randn(4, 3, generator=G), torch.randn(4, 3, generator=G)
    tau, n = 0.5, 4
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    sim = z @ z.T / tau
    terms = []
    for i in range(2 * n):
        j = (i + n) % (2 * n)
        others = torch.cat([sim[i, :i], sim[i, i + 1:]])
        terms.append(-(sim[i, j] - torch.logsumexp(others, 0)))
    assert torch.allclose(create("loss", "nt_xent", temperature=tau)(z1, z2), torch.stack(terms).mean())


def test_triplet_matches_torch_and_has_zero_gradient_when_satisfied():
    a, p, n = (torch.randn(10, 4, generator=G) for _ in range(3))
    ours = create("loss", "triplet_margin", margin=0.5)(a, p, n)
    assert torch.allclose(ours, torch.nn.TripletMarginLoss(margin=0.5)(a, p, n))
    a = torch.zeros(1, 2, requires_grad=True)
    create("loss", "triplet_margin", margin=0.5)(a, torch.tensor([[0.1, 0.0]]), torch.tensor([[5.0, 0.0]])).backward()
    assert torch.count_nonzero(a.grad) == 0


def test_distillation_closed_form_and_gradient_scale():
    s, y = logits_labels(8, 4)
    t = torch.randn(8, 4, generator=G) * 3
    T, alpha = 3.0, 0.7
    kl = F.kl_div(F.log_softmax(s / T, 1), F.softmax(t / T, 1), reduction="batchmean") * T * T
    ref = alpha * kl + (1 - alpha) * F.cross_entropy(s, y)
    assert torch.allclose(create("loss", "distillation", temperature=T, alpha=alpha)(s, y, t), ref)
    # soft-term logit gradient is (softmax(s/T) - softmax(t/T)) * T / N
    s_req = s.clone().requires_grad_(True)
    create("loss", "distillation", temperature=T, alpha=1.0)(s_req, y, t).backward()
    assert torch.allclose(s_req.grad, (F.softmax(s / T, 1) - F.softmax(t / T, 1)) * T / 8)


@pytest.mark.parametrize(
    "name,args",
    [("focal", (torch.zeros(3, 2), torch.zeros(4, dtype=torch.long))), ("hinge", (torch.zeros(3), torch.zeros(3, dtype=torch.long))),
     ("kl_divergence", (torch.zeros(3, 2), torch.zeros(3, 3))), ("info_nce", (torch.zeros(3, 2), torch.zeros(4, 2)))],
)
def test_shape_errors_name_the_loss_and_shapes(name, args):
    with pytest.raises(ValueError, match=name.replace("_", ".")):
        create("loss", name)(*args)


def test_bad_arguments_are_explained():
    with pytest.raises(ValueError, match="gamma"):
        create("loss", "focal", gamma=-1.0)
    with pytest.raises(ValueError, match="alpha must lie"):
        create("loss", "distillation", alpha=1.5)
