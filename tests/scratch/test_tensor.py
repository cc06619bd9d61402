"""Every scratch operation's gradient equals torch.autograd's (float64, 1e-6), broadcasting included."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from deepstrata.scratch import Tensor, softmax_cross_entropy

SETTINGS = settings(max_examples=25, deadline=None, derandomize=True)


@st.composite
def shape(draw, min_dims=1, max_dims=3):
    return tuple(draw(st.lists(st.integers(1, 4), min_size=min_dims, max_size=max_dims)))


@st.composite
def broadcast_pair(draw):
    """Two shapes that broadcast together: drop leading axes and set some axes to 1."""
    a = draw(shape(1, 3))
    keep = draw(st.integers(0, len(a)))
    b = list(a[len(a) - keep:])
    b = [1 if draw(st.booleans()) else s for s in b]
    if draw(st.booleans()):
        return a, tuple(b)
    return tuple(b), a


def arrays(draw, shp, low=-2.0, high=2.0):
    seed = draw(st.integers(0, 2**31 - 1))
    return np.random.default_rng(seed).uniform(low, high, size=shp)


def assert_matches_torch(fn_scratch, fn_torch, *inputs):
    """Compare the value and every input's gradient under a random upstream gradient."""
    s_in = [Tensor(x, requires_grad=True) for x in inputs]
    t_in = [torch.tensor(x, dtype=torch.float64, requires_grad=True) for x in inputs]
    s_out, t_out = fn_scratch(*s_in), fn_torch(*t_in)
    np.testing.assert_allclose(s_out.data, t_out.detach().numpy(), rtol=1e-6, atol=1e-6)
    upstream = np.random.default_rng(0).normal(size=s_out.shape)
    s_out.backward(upstream)
    t_out.backward(torch.from_numpy(upstream))
    for s, t in zip(s_in, t_in):
        np.testing.assert_allclose(s.grad, t.grad.numpy(), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("op", ["add", "sub", "mul", "div"])
@SETTINGS
@given(data=st.data())
def test_binary_ops_with_broadcasting(op, data):
    sa, sb = data.draw(broadcast_pair())
    a = arrays(data.draw, sa)
    b = arrays(data.draw, sb, 0.5, 2.0) * (1 if op != "div" else np.sign(arrays(data.draw, sb)) + (arrays(data.draw, sb) == 0))
    fns = {"add": lambda x, y: x + y, "sub": lambda x, y: x - y, "mul": lambda x, y: x * y, "div": lambda x, y: x / y}
    assert_matches_torch(fns[op], fns[op], a, b)


@SETTINGS
@given(data=st.data(), p=st.sampled_from([2.0, 3.0, 0.5, -1.5]))
def test_pow_constant_and_tensor(data, p):
    shp = data.draw(shape())
    x = arrays(data.draw, shp, 0.3, 2.0)
    assert_matches_torch(lambda t: t**p, lambda t: t**p, x)
    sa, sb = data.draw(broadcast_pair())
    assert_matches_torch(lambda a, b: a**b, lambda a, b: a**b, arrays(data.draw, sa, 0.3, 2.0), arrays(data.draw, sb))


@SETTINGS
@given(data=st.data())
def test_matmul_including_batched_broadcast(data):
    n, k, m = (data.draw(st.integers(1, 5)) for _ in range(3))
    batch = data.draw(st.sampled_from([(), (3,), (2, 1)]))
    other_batch = batch[-1:] if batch else ()
    a = arrays(data.draw, (*batch, n, k))
    b = arrays(data.draw, (*other_batch, k, m))
    assert_matches_torch(lambda x, y: x @ y, lambda x, y: x @ y, a, b)


@SETTINGS
@given(data=st.data())
def test_reductions(data):
    shp = data.draw(shape(1, 3))
    x = arrays(data.draw, shp)
    axis = data.draw(st.sampled_from([None, *range(len(shp))]))
    keep = data.draw(st.booleans())
    if axis is None:
        assert_matches_torch(lambda t: t.sum(), lambda t: t.sum(), x)
        assert_matches_torch(lambda t: t.mean(), lambda t: t.mean(), x)
        assert_matches_torch(lambda t: t.max(), lambda t: t.amax(), x)
    else:
        assert_matches_torch(lambda t: t.sum(axis=axis, keepdims=keep), lambda t: t.sum(dim=axis, keepdim=keep), x)
        assert_matches_torch(lambda t: t.mean(axis=axis, keepdims=keep), lambda t: t.mean(dim=axis, keepdim=keep), x)
        assert_matches_torch(lambda t: t.max(axis=axis, keepdims=keep), lambda t: t.amax(dim=axis, keepdim=keep), x)


def test_max_splits_gradient_between_ties_like_torch():
    x = np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]])
    assert_matches_torch(lambda t: t.max(axis=1), lambda t: t.amax(dim=1), x)
    assert_matches_torch(lambda t: t.max(), lambda t: t.amax(), x)


@SETTINGS
@given(data=st.data())
def test_reshape_and_transpose(data):
    shp = data.draw(shape(2, 3))
    x = arrays(data.draw, shp)
    assert_matches_torch(lambda t: t.reshape(-1), lambda t: t.reshape(-1), x)
    assert_matches_torch(lambda t: t.reshape(shp[0], -1), lambda t: t.reshape(shp[0], -1), x)
    perm = tuple(data.draw(st.permutations(range(len(shp)))))
    assert_matches_torch(lambda t: t.transpose(*perm), lambda t: t.permute(*perm), x)
    assert_matches_torch(lambda t: t.T, lambda t: t.permute(*reversed(range(len(shp)))), x)


@pytest.mark.parametrize("name", ["exp", "log", "relu", "tanh", "sigmoid"])
@SETTINGS
@given(data=st.data())
def test_elementwise_functions(name, data):
    shp = data.draw(shape())
    x = arrays(data.draw, shp, 0.1, 3.0) if name == "log" else arrays(data.draw, shp, -4.0, 4.0)
    assert_matches_torch(lambda t: getattr(t, name)(), lambda t: getattr(torch, name)(t), x)


def test_sigmoid_is_finite_at_extreme_inputs():
    x = Tensor(np.array([-1000.0, 0.0, 1000.0]), requires_grad=True)
    y = x.sigmoid()
    y.sum().backward()
    assert np.all(np.isfinite(y.data)) and np.all(np.isfinite(x.grad))
    np.testing.assert_allclose(y.data, [0.0, 0.5, 1.0])


@SETTINGS
@given(data=st.data(), scale=st.sampled_from([1.0, 50.0, 1000.0]))
def test_softmax_cross_entropy_matches_torch_even_for_huge_logits(data, scale):
    n, k = data.draw(st.integers(1, 6)), data.draw(st.integers(2, 6))
    logits = arrays(data.draw, (n, k)) * scale
    y = np.random.default_rng(data.draw(st.integers(0, 1000))).integers(0, k, size=n)
    s = Tensor(logits, requires_grad=True)
    t = torch.tensor(logits, requires_grad=True)
    ls = softmax_cross_entropy(s, y)
    lt = torch.nn.functional.cross_entropy(t, torch.from_numpy(y))
    ls.backward()
    lt.backward()
    assert np.isfinite(ls.data)
    np.testing.assert_allclose(ls.data, lt.item(), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(s.grad, t.grad.numpy(), rtol=1e-6, atol=1e-6)


@SETTINGS
@given(data=st.data())
def test_composite_graph_with_reuse(data):
    """A tensor used several times accumulates every path's gradient (the multivariate chain rule)."""
    shp = data.draw(shape(2, 2))
    x = arrays(data.draw, shp)
    w = arrays(data.draw, (shp[-1], 3))

    def f(a, b):
        h = (a @ b).tanh()
        return (h * h + (a.sum(axis=1, keepdims=True) * h).exp()).mean(axis=0) - (a @ b).relu().sum(axis=0)

    assert_matches_torch(f, f, x, w)


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="inner dimensions"):
        Tensor(np.ones((2, 3))) @ Tensor(np.ones((2, 3)))
    with pytest.raises(ValueError, match="scalar"):
        Tensor(np.ones(3), requires_grad=True).backward()
    with pytest.raises(ValueError, match="labels must lie"):
        softmax_cross_entropy(Tensor(np.zeros((2, 3))), np.array([0, 3]))
