"""Datasets by name, deterministic splits, and the description of inputs a model expects."""

from deepstrata.data.base import DataBundle, TensorData, build_data

__all__ = ["DataBundle", "TensorData", "build_data"]
