"""Start training from pretrained weights: the body comes from a file or a finished run, the head is new.

Problem: a network trained on one task has learnt features that help on a related one, but
its classification head answers the old question (other classes, another count).
Idea: before step 1, copy every tensor except the head's from the source (a run directory's
model.safetensors, or any .safetensors state dict renamed by a key map) into the freshly built
model, whose head was built for the new classes. "The head" is what the model's
`reset_head` replaces, so this works for every Backbone without knowing its internals.
(Yosinski et al. 2014, "How transferable are features in deep neural networks?")
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from torch import nn

from deepstrata.errors import UserError
from deepstrata.registry import register_callback, registry
from deepstrata.training.callbacks.base import Callback
from deepstrata.transfer.weights import copy_weights, read_state_dict


def head_keys(model: nn.Module) -> set[str]:
    """State-dict names that `reset_head` replaces (the head, and e.g. a capsule decoder).

    Found by calling `reset_head` on a copy and listing the submodules that are new objects.
    """
    if not callable(getattr(model, "reset_head", None)):
        return set()
    probe = copy.deepcopy(model)
    before = dict(probe.named_modules())
    probe.reset_head(1)
    keys: set[str] = set()
    for name, module in probe.named_modules():
        if name and before.get(name) is not module:
            keys |= {f"{name}.{k}" for k in module.state_dict()}
    return keys


def source_state(source: str | Path, *, key_map: str | None) -> tuple[dict[str, Any], str]:
    """The state dict of a run directory (its model.safetensors) or of a .safetensors file."""
    path = Path(source)
    if path.is_dir():
        weights = path / "model.safetensors"
        if not weights.is_file():
            raise UserError(f"pretrained source '{path}' holds no model.safetensors; give a finished run directory or a .safetensors file")
        from deepstrata.run.integrity import verify

        verify(weights, remedy="restore the source run's weights or train it again")  # a damaged source is refused, not copied
        return read_state_dict(weights, key_map=key_map), f"the weights of run '{path}'"
    return read_state_dict(path, key_map=key_map), f"the weights in '{path}'"


class Pretrained(Callback):
    """Copies the source's weights into the model in `setup` (before a resumed checkpoint, before step 1)."""

    def __init__(self, *, source: str, key_map: str | None, keep_head: bool):
        self.source, self.key_map, self.keep_head = source, key_map, keep_head
        self.copied: list[str] = []

    def setup(self, trainer: Any) -> None:
        model = trainer.task.model
        state, where = source_state(self.source, key_map=self.key_map)
        skip = set() if self.keep_head else head_keys(model)
        self.copied = copy_weights(model, state, skip=skip, source=where)


@register_callback("pretrained")
def pretrained(*, source: str, key_map: str | None = None, keep_head: bool = False) -> Pretrained:
    """Initialise the model from a run directory or .safetensors file; the head stays freshly initialised."""
    if key_map is not None:
        registry("key_map").get(key_map)  # a misspelt key map fails when the recipe is built, not at setup
    return Pretrained(source=source, key_map=key_map, keep_head=keep_head)
