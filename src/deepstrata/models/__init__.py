"""Registered model families; every classifier shares the `Backbone` interface."""

from deepstrata.models.base import Backbone

__all__ = ["Backbone"]
