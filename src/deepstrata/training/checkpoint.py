"""Exact resume: everything that decides the rest of a run, in one checkpoint.

Problem: a run restarted from weights alone does not continue the same trajectory: the
optimizer's moments, the schedule's position, the loss scaler, callback state (best metric,
EMA weights, patience), the random streams and the position inside the epoch all matter.
Idea: capture all of them at an optimizer-step boundary, in plain tensors and containers that
`torch.load(weights_only=True)` reads back; with the resumable sampler (`training/sampler.py`)
the resumed run sees the same remaining batches and random draws, and ends bit-identical to
an uninterrupted run on CPU.
"""

from __future__ import annotations

import pickle
import random
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deepstrata.errors import UserError

FORMAT_VERSION = 1


def callback_keys(callbacks: list[Any]) -> list[str]:
    """Stable keys for callback states: the class name, numbered when a class appears twice."""
    seen: Counter[str] = Counter()
    keys = []
    for cb in callbacks:
        name = type(cb).__name__
        keys.append(name if not seen[name] else f"{name}#{seen[name]}")
        seen[name] += 1
    return keys


def rng_state() -> dict[str, Any]:
    np_state = np.random.get_state()
    state = {
        "python": _to_tensor_tree(random.getstate()),
        "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": np_state[2], "has_gauss": np_state[3], "gauss": np_state[4]},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(_from_tensor_tree(state["python"]))
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), int(n["pos"]), int(n["has_gauss"]), float(n["gauss"])))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _to_tensor_tree(py_state: tuple[Any, ...]) -> dict[str, Any]:
    version, internal, gauss = py_state
    return {"version": version, "internal": torch.tensor(internal, dtype=torch.int64), "gauss": gauss}


def _from_tensor_tree(state: dict[str, Any]) -> tuple[Any, ...]:
    return (state["version"], tuple(int(v) for v in state["internal"].tolist()), state["gauss"])


def capture(trainer: Any) -> dict[str, Any]:
    """The trainer's complete state at an optimizer-step boundary."""
    return {
        "format": FORMAT_VERSION,
        "model": trainer.task.model.state_dict(),
        "optimizer": trainer.optimizer.state_dict() if trainer.optimizer is not None else {},
        "scheduler": trainer.scheduler.state_dict() if trainer.scheduler is not None else {},
        "precision": trainer.precision.state_dict(),
        "trainer": trainer.state.state_dict(),
        "callbacks": {key: cb.state_dict() for key, cb in zip(callback_keys(trainer.callbacks), trainer.callbacks)},
        "strategy": trainer.strategy.state_dict(),  # DP-SGD: the privacy accountant's history
        "rng": rng_state(),
        "threads": torch.get_num_threads(),  # a resumed `auto` run keeps the count, and so its arithmetic (training/threads.py)
    }


def restore(trainer: Any, state: dict[str, Any]) -> None:
    """Put a captured state back into a freshly built trainer, task, optimizer and scheduler."""
    if state.get("format") != FORMAT_VERSION:
        raise UserError(f"checkpoint format {state.get('format')!r} is not {FORMAT_VERSION}; it was written by another deepstrata version")
    trainer.task.model.load_state_dict(state["model"])
    if trainer.optimizer is not None and state["optimizer"]:
        trainer.optimizer.load_state_dict(state["optimizer"])
    if trainer.scheduler is not None and state["scheduler"]:
        trainer.scheduler.load_state_dict(state["scheduler"])
    trainer.precision.load_state_dict(state["precision"])
    trainer.state.load_state_dict(state["trainer"])
    trainer.state.stage = "fit"
    # Resuming asks to go on: a stop recorded at the end of the previous launch (max_steps,
    # early stopping) is decided afresh by the resumed run's own limits and callbacks.
    trainer.state.should_stop, trainer.state.stop_reason = False, ""
    saved = state["callbacks"]
    for key, cb in zip(callback_keys(trainer.callbacks), trainer.callbacks):
        if key in saved:
            cb.load_state_dict(saved[key])
    trainer.strategy.load_state_dict(state.get("strategy", {}))
    set_rng_state(state["rng"])


def save_checkpoint(state: dict[str, Any], path: str | Path) -> Path:
    """Write a captured state atomically, with its SHA-256 in `<path>.sha256`."""
    from deepstrata.run.integrity import write_checked

    return write_checked(path, lambda p: torch.save(state, p))


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint safely (tensors and plain containers only), checked against its .sha256.

    torch's zip reader does not check its CRCs, so without the sidecar a flipped bit inside a
    tensor would load as other weights; a checkpoint written before sidecars loads unverified.
    Any file that is not a whole checkpoint is a one-line UserError naming it.
    """
    from deepstrata.run.integrity import verify

    path = Path(path)
    if not path.is_file():
        raise UserError(f"no checkpoint at '{path}'; a run writes checkpoints/last.pt after its first epoch (or every trainer.checkpoint_every_n_steps)")
    retrain = "restore it, or train again without --resume"
    verify(path, remedy=retrain)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - a damaged zip or pickle raises many kinds
        if isinstance(err, pickle.UnpicklingError):  # torch's advice here (weights_only=False) would run code from the file
            reason = "it holds objects other than tensors and plain containers, which are never unpickled"
        else:
            reason = f"{type(err).__name__}: {' '.join(str(err).split()).split('. ')[0][:160]}"
        raise UserError(f"{path}: not a readable checkpoint ({reason}); the file is truncated or damaged: {retrain}") from None
    if not isinstance(state, dict) or not {"format", "model", "trainer", "rng"} <= state.keys():
        raise UserError(f"{path}: not a deepstrata checkpoint (expected the state that checkpoints/last.pt holds); {retrain}")
    if state["format"] != FORMAT_VERSION:
        raise UserError(f"{path}: checkpoint format {state['format']!r} is not {FORMAT_VERSION}; it was written by another deepstrata version")
    return state
