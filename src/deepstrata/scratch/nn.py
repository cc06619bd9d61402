"""Layers from scratch: Linear and the multi-layer perceptron on the scratch autodiff Tensor.

Problem: to see backpropagation work on a real network one needs layers whose weights are
plain arrays that the reader can inspect, compare and copy into PyTorch. Idea: a Linear layer is
`x @ W + b` on scratch Tensors with Kaiming/He-uniform initialisation drawn from an explicit
NumPy generator, and an MLP stacks them with ReLU/tanh/sigmoid between (Rumelhart et al. 1986;
He et al. 2015, "Delving Deep into Rectifiers", for the initialisation).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from deepstrata.scratch.tensor import Tensor

SCRATCH_ACTIVATIONS = ("relu", "tanh", "sigmoid")


class Module:
    """Something with parameters; `parameters()` lists them in a fixed order."""

    def parameters(self) -> list[Tensor]:
        raise NotImplementedError

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.zero_grad()

    def __call__(self, x: Tensor) -> Tensor:
        return self.forward(x)

    def forward(self, x: Tensor) -> Tensor:
        raise NotImplementedError


class Linear(Module):
    """y = x W + b with W (in, out); uniform(+-1/sqrt(in)) init, torch.nn.Linear's default."""

    def __init__(self, in_features: int, out_features: int, *, rng: np.random.Generator):
        bound = 1.0 / np.sqrt(in_features)
        self.in_features = in_features
        self.weight = Tensor(rng.uniform(-bound, bound, size=(in_features, out_features)), requires_grad=True)
        self.bias = Tensor(rng.uniform(-bound, bound, size=(out_features,)), requires_grad=True)

    def parameters(self) -> list[Tensor]:
        return [self.weight, self.bias]

    def forward(self, x: Tensor) -> Tensor:
        """(N, in) -> (N, out)."""
        if x.ndim != 2 or x.shape[1] != self.in_features:
            raise ValueError(f"scratch Linear expected (N, {self.in_features}) input, got {x.shape}")
        return x @ self.weight + self.bias


class MLP(Module):
    """[Linear -> activation] x len(hidden), then a linear head producing logits."""

    def __init__(self, sizes: Sequence[int], *, activation: str = "relu", seed: int = 0):
        if len(sizes) < 2:
            raise ValueError(f"scratch MLP needs at least input and output sizes, got {list(sizes)}")
        if activation not in SCRATCH_ACTIVATIONS:
            raise ValueError(f"scratch MLP: unknown activation '{activation}' (choices: {', '.join(SCRATCH_ACTIVATIONS)})")
        rng = np.random.default_rng(seed)
        self.activation = activation
        self.layers = [Linear(a, b, rng=rng) for a, b in zip(sizes[:-1], sizes[1:])]

    def parameters(self) -> list[Tensor]:
        return [p for layer in self.layers for p in layer.parameters()]

    def forward(self, x: Tensor) -> Tensor:
        """(N, sizes[0]) -> (N, sizes[-1]) logits."""
        for layer in self.layers[:-1]:
            x = getattr(layer(x), self.activation)()
        return self.layers[-1](x)


class SGD:
    """Stochastic gradient descent with (heavy-ball) momentum, torch.optim.SGD's update rule.

    v <- mu * v + g;  w <- w - lr * v   (Polyak 1964; Sutskever et al. 2013).
    """

    def __init__(self, params: Sequence[Tensor], *, lr: float = 0.1, momentum: float = 0.0, weight_decay: float = 0.0):
        if lr <= 0:
            raise ValueError(f"scratch SGD: lr must be positive, got {lr}")
        if not 0 <= momentum < 1:
            raise ValueError(f"scratch SGD: momentum must be in [0, 1), got {momentum}")
        self.params = list(params)
        self.lr = lr
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.velocity: list[np.ndarray | None] = [None] * len(self.params)

    def zero_grad(self) -> None:
        for p in self.params:
            p.zero_grad()

    def step(self) -> None:
        for i, p in enumerate(self.params):
            if p.grad is None:
                continue
            g = p.grad + self.weight_decay * p.data
            if self.momentum:
                v = self.velocity[i]
                v = g.copy() if v is None else self.momentum * v + g  # torch starts the buffer at g
                self.velocity[i] = v
                g = v
            p.data -= self.lr * g
