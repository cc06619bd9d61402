"""The training loop and its callbacks."""

from deepstrata.train.callbacks.base import Callback
from deepstrata.train.state import TrainerState
from deepstrata.train.trainer import Trainer

__all__ = ["Callback", "Trainer", "TrainerState"]
