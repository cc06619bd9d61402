"""Everything optional the Trainer does, as callbacks with `on_<stage>_<event>` hooks."""

from deepstrata.train.callbacks.base import Callback

__all__ = ["Callback"]
