"""`strata prune RUN --sparsity 0.9`: the run's model with its smallest weights removed, fine-tuned.

Problem: pruning alone costs accuracy at high sparsity; the recovery needs training the rest,
on the run's own data and recipe, without letting the pruned weights grow back.
Idea: magnitude-prune a copy of the model (`compression/pruning.py`), then, unless
`--finetune-epochs 0`, train the parent's own recipe for that many epochs from the pruned
weights (the `pretrained` callback with the head kept) at `finetune_lr_scale` times its
learning rate, with the `keep_sparsity` callback holding the zeros. The result is a derived run
whose run.json records the sparsity and the test accuracy before pruning, after pruning and
after fine-tuning. The fine-tuning run is written to a temporary folder and removed once its
weights are taken: the derived run is the result.
"""

from __future__ import annotations

import copy
import json
import tempfile
from pathlib import Path

from deepstrata.compression.pruning import Scope, apply_masks, magnitude_masks, sparsity_of
from deepstrata.errors import UserError
from deepstrata.registry import register_tool
from deepstrata.run.run import Run
from deepstrata.tools.base import Derived, phase


def _test_accuracy(run: Run, model) -> float:  # noqa: ANN001
    from deepstrata.tools.predictions import split_logits

    logits, labels = split_logits(run, "test", model=model)
    return float((logits.argmax(dim=1) == labels).float().mean())


@register_tool("prune", kind="transformation")
def prune(run: Run, *, sparsity: float = 0.9, scope: Scope = "global", finetune_epochs: int = 2, finetune_lr_scale: float = 0.1) -> Derived:
    """Zero the smallest weights (magnitude pruning), then fine-tune with the zeros held.

    sparsity: the fraction of weights (tensors of 2+ dimensions) set to zero.
    scope: global (one threshold for all layers) or layer (the same fraction in each).
    finetune_epochs: epochs of the run's own recipe from the pruned weights; 0 skips fine-tuning.
    finetune_lr_scale: the fine-tuning learning rate as a fraction of the recipe's.
    """
    from safetensors.torch import save_file

    from deepstrata import api
    from deepstrata.tools.predictions import require_classifier

    require_classifier(run, "prune")
    if finetune_epochs < 0 or finetune_lr_scale <= 0:
        raise UserError(f"prune: finetune_epochs must be >= 0 and finetune_lr_scale > 0, got {finetune_epochs}, {finetune_lr_scale}")
    model = run.model().eval()
    phase("prune: test accuracy before pruning")
    before = _test_accuracy(run, model)
    pruned = copy.deepcopy(model)
    apply_masks(pruned, magnitude_masks(pruned, sparsity, scope=scope))
    phase(f"prune: {sparsity:.0%} of the weights zeroed ({scope}); test accuracy")
    after_cut = _test_accuracy(run, pruned)
    metrics = {"prune/sparsity": sparsity_of(pruned), "test/accuracy_before": before, "test/accuracy_pruned": after_cut}
    if finetune_epochs == 0:
        metrics["test/accuracy"] = after_cut
        return Derived(model=pruned, spec_updates={"pruning": {"sparsity": sparsity, "scope": scope}}, metrics=metrics)
    with tempfile.TemporaryDirectory(prefix="deepstrata-prune-") as tmp:
        weights = Path(tmp) / "pruned.safetensors"
        save_file({k: v.detach().cpu().contiguous() for k, v in pruned.state_dict().items()}, str(weights))
        lr = float(run.recipe.optimizer.kwargs.get("lr", 1e-3)) * finetune_lr_scale
        callbacks = [c for c in run.config.get("callbacks") or [] if c.get("name") not in ("pretrained", "keep_sparsity")]
        callbacks += [{"name": "pretrained", "source": str(weights), "keep_head": True}, {"name": "keep_sparsity"}]
        phase(f"prune: fine-tuning {finetune_epochs} epoch(s) at lr {lr:g} with the zeros held")
        result = api.train(
            run.config,
            [
                f"trainer.max_epochs={finetune_epochs}",
                f"optimizer.lr={lr}",
                "trainer.progress=off",
                f"output_dir={tmp}/runs",
                "callbacks=" + json.dumps(callbacks),
            ],
        )
        tuned = Run.open(result.run_dir).model().eval()
    metrics["prune/sparsity"] = sparsity_of(tuned)
    metrics["test/accuracy"] = float(result.metrics["test/accuracy"])
    spec = {"pruning": {"sparsity": sparsity, "scope": scope, "finetune_epochs": finetune_epochs, "finetune_lr": lr}}
    return Derived(model=tuned, spec_updates=spec, metrics=metrics)
