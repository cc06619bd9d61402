"""Registered model families; every classifier shares the `Backbone` interface."""

from deepstrata.models.base import Backbone, check_input

__all__ = ["Backbone", "check_input"]
