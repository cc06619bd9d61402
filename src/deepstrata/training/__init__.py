"""The training loop and its callbacks."""

from deepstrata.training.callbacks.base import Callback
from deepstrata.training.state import TrainerState
from deepstrata.training.trainer import Trainer

__all__ = ["Callback", "Trainer", "TrainerState"]
