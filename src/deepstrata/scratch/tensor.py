"""Reverse-mode automatic differentiation on NumPy arrays: backpropagation from scratch.

Problem: a network's loss depends on its weights through thousands of composed operations, and
deriving each weight's gradient by hand is hopeless. Idea: record every operation in a graph as
it runs, then walk the graph backwards once applying the chain rule, each node adding its
local vector-Jacobian product to its inputs' gradients (Rumelhart, Hinton & Williams 1986,
"Learning representations by back-propagating errors"; Linnainmaa 1970 for reverse mode).

Broadcasting is handled the way NumPy and torch do: an input that was broadcast to a larger
shape receives the gradient summed over the broadcast axes (`_unbroadcast`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

ArrayLike = Any


def _unbroadcast(grad: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Sum `grad` over the axes along which an input of `shape` was broadcast."""
    while grad.ndim > len(shape):  # leading axes added by broadcasting
        grad = grad.sum(axis=0)
    for axis, size in enumerate(shape):
        if size == 1 and grad.shape[axis] != 1:  # size-1 axes stretched by broadcasting
            grad = grad.sum(axis=axis, keepdims=True)
    return grad


class Tensor:
    """An n-dimensional array that remembers how it was computed, so it can backpropagate.

    `data` is a float NumPy array; `grad` is filled by `backward()` for every tensor with
    `requires_grad=True` that the output depends on.
    """

    def __init__(self, data: ArrayLike, *, requires_grad: bool = False, dtype: Any = np.float64,
                 _parents: Sequence[Tensor] = (), _backward: Callable[[np.ndarray], None] | None = None, _op: str = ""):
        self.data = np.asarray(data, dtype=dtype)
        self.requires_grad = requires_grad or any(p.requires_grad for p in _parents)
        self.grad: np.ndarray | None = None
        self._parents = tuple(_parents)
        self._backward = _backward
        self._op = _op

    # ------------------------------------------------------------------ basics
    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def ndim(self) -> int:
        return self.data.ndim

    def __repr__(self) -> str:
        return f"Tensor(shape={self.shape}, op={self._op or 'leaf'}, requires_grad={self.requires_grad})"

    def numpy(self) -> np.ndarray:
        return self.data

    def zero_grad(self) -> None:
        self.grad = None

    def _accumulate(self, grad: np.ndarray) -> None:
        if not self.requires_grad:
            return
        grad = _unbroadcast(grad, self.shape)
        self.grad = grad.copy() if self.grad is None else self.grad + grad

    @staticmethod
    def _lift(other: ArrayLike | Tensor, dtype: Any) -> Tensor:
        return other if isinstance(other, Tensor) else Tensor(other, dtype=dtype)

    def _make(self, data: np.ndarray, parents: Sequence[Tensor], backward: Callable[[np.ndarray], None], op: str) -> Tensor:
        return Tensor(data, dtype=self.data.dtype, _parents=parents, _backward=backward, _op=op)

    def backward(self, grad: ArrayLike | None = None) -> None:
        """Backpropagate from this tensor; `grad` defaults to 1 for a scalar output."""
        if grad is None:
            if self.data.size != 1:
                raise ValueError(f"backward() without a gradient needs a scalar output, got shape {self.shape}; pass grad=")
            grad = np.ones_like(self.data)
        grad = np.asarray(grad, dtype=self.data.dtype)
        if grad.shape != self.shape:
            raise ValueError(f"Tensor.backward: gradient shape {grad.shape} does not match the tensor's shape {self.shape}")
        order: list[Tensor] = []
        seen: set[int] = set()
        stack: list[tuple[Tensor, bool]] = [(self, False)]
        while stack:  # iterative topological sort: deep graphs do not hit the recursion limit
            node, done = stack.pop()
            if done:
                order.append(node)
                continue
            if id(node) in seen:
                continue
            seen.add(id(node))
            stack.append((node, True))
            stack.extend((p, False) for p in node._parents if p.requires_grad)
        grads: dict[int, np.ndarray] = {id(self): grad}
        for node in reversed(order):
            g = grads.pop(id(node), None)
            if g is None:
                continue
            if node._backward is None:  # a leaf: keep its gradient
                node._accumulate(g)
                continue
            for parent, pg in node._backward(g):
                if not parent.requires_grad:
                    continue
                pg = _unbroadcast(pg, parent.shape)
                grads[id(parent)] = pg if id(parent) not in grads else grads[id(parent)] + pg

    # ------------------------------------------------------------------ arithmetic
    def __add__(self, other: ArrayLike | Tensor) -> Tensor:
        o = self._lift(other, self.data.dtype)
        return self._make(self.data + o.data, (self, o), lambda g: ((self, g), (o, g)), "add")

    __radd__ = __add__

    def __neg__(self) -> Tensor:
        return self._make(-self.data, (self,), lambda g: ((self, -g),), "neg")

    def __sub__(self, other: ArrayLike | Tensor) -> Tensor:
        o = self._lift(other, self.data.dtype)
        return self._make(self.data - o.data, (self, o), lambda g: ((self, g), (o, -g)), "sub")

    def __rsub__(self, other: ArrayLike) -> Tensor:
        return self._lift(other, self.data.dtype) - self

    def __mul__(self, other: ArrayLike | Tensor) -> Tensor:
        o = self._lift(other, self.data.dtype)
        return self._make(self.data * o.data, (self, o), lambda g: ((self, g * o.data), (o, g * self.data)), "mul")

    __rmul__ = __mul__

    def __truediv__(self, other: ArrayLike | Tensor) -> Tensor:
        o = self._lift(other, self.data.dtype)
        out = self.data / o.data
        return self._make(out, (self, o), lambda g: ((self, g / o.data), (o, -g * out / o.data)), "div")

    def __rtruediv__(self, other: ArrayLike) -> Tensor:
        return self._lift(other, self.data.dtype) / self

    def __pow__(self, exponent: float | Tensor) -> Tensor:
        """x ** p for a constant p, or x ** y for a tensor y (then x must be positive)."""
        if isinstance(exponent, Tensor):
            out = self.data**exponent.data
            return self._make(
                out,
                (self, exponent),
                lambda g: ((self, g * exponent.data * self.data ** (exponent.data - 1)), (exponent, g * out * np.log(self.data))),
                "pow",
            )
        p = float(exponent)
        return self._make(self.data**p, (self,), lambda g: ((self, g * p * self.data ** (p - 1)),), "pow")

    def __matmul__(self, other: Tensor) -> Tensor:
        """Matrix product of 2-D (or batched, broadcast) operands; 1-D operands are not supported."""
        o = self._lift(other, self.data.dtype)
        if self.ndim < 2 or o.ndim < 2:
            raise ValueError(f"Tensor.matmul needs operands with at least 2 dimensions, got {self.shape} @ {o.shape}")
        if self.shape[-1] != o.shape[-2]:
            raise ValueError(f"Tensor.matmul: inner dimensions differ, {self.shape} @ {o.shape}")

        def backward(g: np.ndarray):
            return ((self, g @ np.swapaxes(o.data, -1, -2)), (o, np.swapaxes(self.data, -1, -2) @ g))

        return self._make(self.data @ o.data, (self, o), backward, "matmul")

    # ------------------------------------------------------------------ reductions
    def sum(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Tensor:
        def backward(g: np.ndarray):
            if not keepdims and axis is not None:
                g = np.expand_dims(g, axis)
            return ((self, np.broadcast_to(g, self.shape)),)

        return self._make(self.data.sum(axis=axis, keepdims=keepdims), (self,), backward, "sum")

    def mean(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Tensor:
        count = self.data.size if axis is None else int(np.prod([self.shape[a] for a in np.atleast_1d(axis)]))
        return self.sum(axis=axis, keepdims=keepdims) * (1.0 / count)

    def max(self, axis: int | None = None, keepdims: bool = False) -> Tensor:
        """Maximum; the gradient is shared equally among tied maxima (as torch.amax does)."""
        out = self.data.max(axis=axis, keepdims=True)
        mask = (self.data == out).astype(self.data.dtype)
        mask /= mask.sum(axis=axis, keepdims=True)

        def backward(g: np.ndarray):
            if not keepdims and axis is not None:
                g = np.expand_dims(g, axis)
            return ((self, mask * g),)

        value = out if keepdims else (out.reshape(()) if axis is None else np.squeeze(out, axis=axis))
        return self._make(value, (self,), backward, "max")

    # ------------------------------------------------------------------ shape
    def reshape(self, *shape: int) -> Tensor:
        shape = tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
        return self._make(self.data.reshape(shape), (self,), lambda g: ((self, g.reshape(self.shape)),), "reshape")

    def transpose(self, *axes: int) -> Tensor:
        """Permute axes (all reversed when none are given), like numpy.transpose."""
        perm = tuple(axes) if axes else tuple(reversed(range(self.ndim)))
        inverse = tuple(np.argsort(perm))
        return self._make(self.data.transpose(perm), (self,), lambda g: ((self, g.transpose(inverse)),), "transpose")

    @property
    def T(self) -> Tensor:  # noqa: N802 - NumPy's name
        return self.transpose()

    # ------------------------------------------------------------------ elementwise functions
    def exp(self) -> Tensor:
        out = np.exp(self.data)
        return self._make(out, (self,), lambda g: ((self, g * out),), "exp")

    def log(self) -> Tensor:
        return self._make(np.log(self.data), (self,), lambda g: ((self, g / self.data),), "log")

    def relu(self) -> Tensor:
        # Subgradient 0 at exactly 0, matching torch.
        return self._make(np.maximum(self.data, 0), (self,), lambda g: ((self, g * (self.data > 0)),), "relu")

    def tanh(self) -> Tensor:
        out = np.tanh(self.data)
        return self._make(out, (self,), lambda g: ((self, g * (1 - out**2)),), "tanh")

    def sigmoid(self) -> Tensor:
        # Split by sign so neither branch overflows exp().
        x = self.data
        e = np.exp(-np.abs(x))
        out = np.where(x >= 0, 1 / (1 + e), e / (1 + e))
        return self._make(out, (self,), lambda g: ((self, g * out * (1 - out)),), "sigmoid")


def softmax_cross_entropy(logits: Tensor, target: ArrayLike) -> Tensor:
    """Mean cross-entropy of softmax(logits) (N, K) against integer labels (N,), in one stable op.

    log-softmax is computed as z - max(z) - log(sum(exp(z - max(z)))) so no exp() overflows; the
    fused gradient (softmax - one_hot) / N never divides by a tiny probability.
    """
    if logits.ndim != 2:
        raise ValueError(f"softmax_cross_entropy expects logits (N, K), got shape {logits.shape}")
    y = np.asarray(target)
    if y.shape != (logits.shape[0],):
        raise ValueError(f"softmax_cross_entropy: labels shape {y.shape} does not match logits {logits.shape}; expected ({logits.shape[0]},)")
    if y.size and (y.min() < 0 or y.max() >= logits.shape[1]):
        raise ValueError(f"softmax_cross_entropy: labels must lie in 0..{logits.shape[1] - 1}, got {y.min()}..{y.max()}")
    z = logits.data - logits.data.max(axis=1, keepdims=True)
    logsumexp = np.log(np.exp(z).sum(axis=1, keepdims=True))
    logp = z - logsumexp  # (N, K)
    n = len(y)
    loss = -logp[np.arange(n), y].mean()

    def backward(g: np.ndarray):
        grad = np.exp(logp)
        grad[np.arange(n), y] -= 1
        return ((logits, g * grad / n),)

    return logits._make(np.asarray(loss), (logits,), backward, "softmax_cross_entropy")
