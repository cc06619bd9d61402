"""Everything optional the Trainer does, as callbacks with `on_<stage>_<event>` hooks."""

from deepstrata.training.callbacks.base import Callback

__all__ = ["Callback"]
