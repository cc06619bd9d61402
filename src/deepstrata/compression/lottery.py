"""Lottery tickets: the pruning mask of the trained weights, applied to the weights training started from.

Problem: a pruned network fine-tuned from its trained weights says nothing about whether the
sparse network could have been trained on its own, and a sparse network trained from a fresh
random initialisation usually learns worse than the dense one.
Idea: Frankle & Carbin 2019 ("The Lottery Ticket Hypothesis: Finding Sparse, Trainable Neural
Networks"): take the magnitude mask of the trained weights, reset the surviving weights to
their values at initialisation, and retrain with the mask held. The "winning ticket" matches
the dense network where the same mask on a random re-initialisation does not. The initial
weights are not stored by training, but they are a function of the recipe: `build_experiment`
seeds torch with the recipe's seed right before building the model, so building it again
recreates them bit for bit (`initial_state`, tested against the weights at step 1 of a real
run). The control re-initialisation (`random_state`) builds the same model under another seed.
Iterative pruning (the paper's stronger tickets) repeats prune, rewind, retrain over rounds,
each removing the same fraction of what is left (`round_sparsity`).
Deep networks' tickets often need the weights of a few hundred steps into training instead
(rewinding to iteration k; Frankle et al. 2020, "Linear Mode Connectivity and the Lottery Ticket
Hypothesis"): `replayed_state` trains the run's recipe again and stops after step k. Training
is a function of the recipe (seeded data order, augmentation and initialisation, one thread),
so the replay reaches the parent's own weights at step k (tested: replayed to its last step, it
gives the parent's final weights bit for bit).
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import numpy as np
import torch

from deepstrata.errors import UserError
from deepstrata.run.run import Run
from deepstrata.training.callbacks.base import Callback

# Callbacks that change the weights before step 1, after the model is built: with them the
# built model is not the one training started from, so rewinding to it would be wrong.
_CHANGES_INITIAL_WEIGHTS = ("pretrained", "weight_init")
RANDOM_SEED_OFFSET = 1  # the control re-initialisation's seed: the recipe's seed + 1


@contextmanager
def _rng_kept() -> Iterator[None]:
    """Python's, NumPy's and torch's global generators as they were, afterwards (building a model seeds them)."""
    py, npy = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        yield
    random.setstate(py)
    np.random.set_state(npy)


def check_rewindable(run: Run) -> None:
    """Refuse a run whose training did not start from the weights its recipe's seed builds."""
    changed = [c.get("name") for c in run.config.get("callbacks") or [] if c.get("name") in _CHANGES_INITIAL_WEIGHTS]
    if changed:
        raise UserError(
            f"prune --rewind: the run's recipe starts from other weights than its seed builds (callbacks {', '.join(map(str, changed))}), "
            "so its initial weights cannot be recreated; prune without --rewind, or rewind a run trained from its own initialisation"
        )


def initial_state(run: Run) -> dict[str, torch.Tensor]:
    """The state dict the run's model had before its first step, rebuilt from its recipe and seed."""
    from deepstrata.experiment import build_experiment

    check_rewindable(run)
    with _rng_kept():
        model = build_experiment(run.recipe).model
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def random_state(run: Run) -> dict[str, torch.Tensor]:
    """The same model freshly initialised under another seed (the recipe's + 1): the ticket's control."""
    from deepstrata.experiment import build_experiment

    recipe = run.recipe.model_copy(update={"seed": run.recipe.seed + RANDOM_SEED_OFFSET})
    with _rng_kept():
        model = build_experiment(recipe).model
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


class _StopAfter(Callback):
    """Keeps the weights after optimizer step `step` and stops the fit there."""

    runs_last = True  # after every other callback has acted on that step, as a checkpoint would

    def __init__(self, step: int) -> None:
        self.step = step
        self.state: dict[str, torch.Tensor] | None = None

    def on_train_batch_end(self, trainer: object, output: object) -> None:
        if trainer.state.global_step == self.step:  # type: ignore[attr-defined]
            self.state = {k: v.detach().cpu().clone() for k, v in trainer.task.model.state_dict().items()}  # type: ignore[attr-defined]
            trainer.state.should_stop = True  # type: ignore[attr-defined]


def replayed_state(run: Run, step: int) -> dict[str, torch.Tensor]:
    """The run's weights after optimizer step `step`, by training its recipe again up to there."""
    import tempfile

    from deepstrata import api

    check_rewindable(run)
    if step < 1:
        raise UserError(f"prune: the rewind step must be >= 1 (0 is the initial weights: leave --rewind-step out), got {step}")
    stop = _StopAfter(step)
    with tempfile.TemporaryDirectory(prefix="deepstrata-rewind-") as tmp, _rng_kept():
        api.train(run.config, ["trainer.progress=off", f"output_dir={tmp}/runs", "trainer.test_weights=last"], extra_callbacks=[stop])
    if stop.state is None:
        raise UserError(f"prune: the run's training has fewer than {step} optimizer steps; give a --rewind-step below its length")
    return stop.state


def round_sparsity(round_: int, rounds: int, final: float) -> float:
    """The sparsity after round `round_` of `rounds` of iterative pruning: 1 - (1 - final)^(round / rounds).

    Each round removes the same fraction of the weights still left (Frankle & Carbin prune p^(1/n)% per round).
    """
    return 1.0 - (1.0 - final) ** (round_ / rounds)


def ticket(state: Mapping[str, torch.Tensor], masks: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """`state` with the entries the masks prune set to +0.0 (other tensors unchanged)."""
    out = {}
    for name, tensor in state.items():
        keep = masks.get(name)
        out[name] = tensor.clone() if keep is None else torch.where(keep.to(tensor.device), tensor, torch.zeros_like(tensor))
    return out
