"""Backpropagation from scratch: a small reverse-mode autodiff engine on NumPy arrays."""

from deepstrata.scratch.tensor import Tensor, softmax_cross_entropy

__all__ = ["Tensor", "softmax_cross_entropy"]
