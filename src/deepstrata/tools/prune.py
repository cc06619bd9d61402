"""`strata prune RUN --sparsity 0.9`: the run's model with its smallest weights removed, fine-tuned.

Problem: pruning alone costs accuracy at high sparsity; the recovery needs training the rest,
on the run's own data and recipe, without letting the pruned weights grow back.
Idea: three ways to reach the sparsity (`compression/pruning.py`), each training the parent's
own recipe with the zeros held:
- `--schedule one_shot` (the default): magnitude-prune a copy of the model, then, unless
  `--finetune-epochs 0`, train that many epochs from the pruned weights (the `pretrained`
  callback with the head kept) at `finetune_lr_scale` times the recipe's learning rate, with the
  `keep_sparsity` callback holding the zeros;
- `--schedule gradual`: the same fine-tuning from the unpruned weights, with the
  `gradual_pruning` callback cutting on Zhu & Gupta's cubic schedule over the first 70% of its
  steps; the last epoch's weights are kept (they are the ones at the full sparsity);
- `--rewind init` (a lottery ticket, `compression/lottery.py`): the mask of the trained weights
  applied to the weights the run started from, recreated from its seed, then the recipe trained
  again at its own learning rate for `--rewind-epochs` (0: the recipe's epochs) with the mask
  held; `--rewind-step K` takes the weights after K steps of the run's training instead (replayed
  exactly); `--rewind-rounds R` prunes iteratively, R rounds of prune, rewind and retrain, each
  removing the same fraction of what is left (Frankle & Carbin's iterative pruning);
  `--rewind random` applies the same (last round's) mask to another random initialisation (the control).
The result is a derived run whose weights are stored sparse (`transfer/sparse_weights.py`)
and whose run.json records the sparsity and the test accuracy before pruning, right after the
cut (one-shot) and after training. The training run is written to a temporary folder and
removed once its weights are taken: the derived run is the result.
"""

from __future__ import annotations

import copy
from typing import Literal

import torch

from deepstrata.compression.pruning import Scope, apply_masks, magnitude_masks, prunable, sparsity_of
from deepstrata.errors import UserError
from deepstrata.registry import register_tool
from deepstrata.run.run import Run
from deepstrata.tools.base import Derived, phase
from deepstrata.tools.retrain import recipe_lr, retrain, split_accuracy

Schedule = Literal["one_shot", "gradual"]
Rewind = Literal["none", "init", "random"]
GRADUAL_END = 0.7  # the schedule ends after 70% of the fine-tuning steps; the rest recovers at the full sparsity
# Callbacks of the parent's recipe that the pruning run replaces with its own.
_REPLACED = ("keep_sparsity", "gradual_pruning")



@register_tool("prune", kind="transformation")
def prune(
    run: Run,
    *,
    sparsity: float = 0.9,
    scope: Scope = "global",
    finetune_epochs: int = 2,
    finetune_lr_scale: float = 0.1,
    schedule: Schedule = "one_shot",
    rewind: Rewind = "none",
    rewind_epochs: int = 0,
    rewind_step: int = 0,
    rewind_rounds: int = 1,
) -> Derived:
    """Zero the smallest weights (magnitude pruning), then train with the zeros held.

    sparsity: the fraction of weights (tensors of 2+ dimensions) set to zero.
    scope: global (one threshold for all layers) or layer (the same fraction in each).
    finetune_epochs: epochs of the run's own recipe from the (pruned) weights; 0 skips fine-tuning (one_shot only).
    finetune_lr_scale: the fine-tuning learning rate as a fraction of the recipe's.
    schedule: one_shot (cut, then fine-tune) or gradual (cut on a cubic schedule while fine-tuning).
    rewind: none, init (lottery ticket: the mask on the run's initial weights, retrained) or random (the mask on a fresh initialisation).
    rewind_epochs: epochs of retraining with --rewind; 0 means the recipe's own max_epochs.
    rewind_step: with --rewind init, the weights after this many steps of the run's training (replayed) instead of the initial ones.
    rewind_rounds: rounds of iterative pruning with --rewind (prune, rewind, retrain), each removing the same fraction of what is left.
    """
    from deepstrata.tools.predictions import require_classifier

    require_classifier(run, "prune")
    if finetune_epochs < 0 or finetune_lr_scale <= 0:
        raise UserError(f"prune: finetune_epochs must be >= 0 and finetune_lr_scale > 0, got {finetune_epochs}, {finetune_lr_scale}")
    if rewind_epochs < 0 or rewind_step < 0 or rewind_rounds < 1:
        raise UserError(f"prune: rewind_epochs and rewind_step must be >= 0 and rewind_rounds >= 1, got {rewind_epochs}, {rewind_step}, {rewind_rounds}")
    if rewind_rounds > 1 and rewind == "none":
        raise UserError("prune: --rewind-rounds repeats prune, rewind, retrain: give --rewind init (or random for its control)")
    if rewind_step and rewind != "init":
        raise UserError("prune: --rewind-step rewinds the run's own training: use it with --rewind init")
    if rewind != "none" and schedule != "one_shot":
        raise UserError("prune: --rewind takes its mask from the trained weights in one cut; use it with --schedule one_shot (the default)")
    if schedule == "gradual" and finetune_epochs == 0:
        raise UserError("prune --schedule gradual prunes while fine-tuning: give --finetune-epochs 1 or more")
    model = run.model().eval()
    phase("prune: test accuracy before pruning")
    metrics = {"test/accuracy_before": split_accuracy(run, model)}
    spec = {"sparsity": sparsity, "scope": scope, "schedule": schedule}
    if rewind != "none":
        tuned, trained = _lottery(run, model, sparsity=sparsity, scope=scope, rewind=rewind, epochs=rewind_epochs, step=rewind_step, rounds=rewind_rounds)
        spec.update(rewind=rewind, rewind_epochs=rewind_epochs or run.recipe.trainer.max_epochs, rewind_step=rewind_step, rewind_rounds=rewind_rounds)
    elif schedule == "gradual":
        phase(f"prune: {finetune_epochs} epoch(s) of gradual pruning to {sparsity:.0%} ({scope})")
        cut = {"name": "gradual_pruning", "final_sparsity": sparsity, "scope": scope, "end": GRADUAL_END}
        tuned, trained = retrain(run, model.state_dict(), callbacks=[cut], epochs=finetune_epochs, lr_scale=finetune_lr_scale, test_weights="last", replaced=_REPLACED, label="prune")
        spec.update(finetune_epochs=finetune_epochs, finetune_lr=recipe_lr(run, finetune_lr_scale), schedule_end=GRADUAL_END)
    else:
        pruned = copy.deepcopy(model)
        apply_masks(pruned, magnitude_masks(pruned, sparsity, scope=scope))
        phase(f"prune: {sparsity:.0%} of the weights zeroed ({scope}); test accuracy")
        metrics["test/accuracy_pruned"] = split_accuracy(run, pruned)
        if finetune_epochs == 0:
            metrics.update({"prune/sparsity": sparsity_of(pruned), "test/accuracy": metrics["test/accuracy_pruned"]})
            return Derived(model=_positive_zeros(pruned), spec_updates={"pruning": spec}, metrics=metrics, sparse_weights=True)
        tuned, trained = retrain(run, pruned.state_dict(), callbacks=[{"name": "keep_sparsity"}], epochs=finetune_epochs, lr_scale=finetune_lr_scale, replaced=_REPLACED, label="prune")
        spec.update(finetune_epochs=finetune_epochs, finetune_lr=recipe_lr(run, finetune_lr_scale))
    metrics.update({"prune/sparsity": sparsity_of(tuned), **trained})
    return Derived(model=_positive_zeros(tuned), spec_updates={"pruning": spec}, metrics=metrics, sparse_weights=True)


def _lottery(run: Run, trained_model: torch.nn.Module, *, sparsity: float, scope: Scope, rewind: Rewind, epochs: int, step: int, rounds: int) -> tuple[torch.nn.Module, dict[str, float]]:
    """The trained weights' mask on the initial (or a random) initialisation, retrained at the recipe's learning rate.

    With `rounds` > 1 (iterative pruning): each round prunes the previous round's retrained weights
    further (`round_sparsity`), rewinds and retrains; `random` puts the last round's mask on a
    random initialisation instead.
    """
    from deepstrata.compression.lottery import check_rewindable, initial_state, random_state, replayed_state, round_sparsity, ticket
    from deepstrata.training.callbacks.keep_sparsity import KeepSparsity

    check_rewindable(run)
    if step:
        phase(f"prune: replaying the run's training to step {step}")
        rewound = replayed_state(run, step)
    else:
        rewound = initial_state(run) if rewind == "init" or rounds > 1 else None
    current, masks, trained = trained_model, None, {}
    for r in range(1, rounds + 1):
        target = round_sparsity(r, rounds, sparsity)
        masks = magnitude_masks(current, target, scope=scope, previous=masks)
        on_random = rewind == "random" and r == rounds
        phase(f"prune: round {r}/{rounds}: the {target:.1%} mask of the trained weights on {'a random initialisation' if on_random else 'the rewound weights'}")
        start = ticket(random_state(run) if on_random else rewound, masks)
        held = KeepSparsity()
        held.masks = masks  # the mask itself, not "whatever is zero": an initialisation may hold zeros of its own
        current, trained = retrain(run, start, epochs=epochs or run.recipe.trainer.max_epochs, lr_scale=1.0, extra_callbacks=[held], replaced=_REPLACED, label="prune")
    return current, trained


@torch.no_grad()
def _positive_zeros(model: torch.nn.Module) -> torch.nn.Module:
    """Pruned entries as +0.0 (a mask product leaves -0.0 where the weight was negative), so the sparse file stores none of them."""
    for p in prunable(model).values():
        p.masked_fill_(p == 0, 0.0)
    return model
