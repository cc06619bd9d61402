"""`strata prune-channels RUN --fraction 0.5`: the run's model with whole channels removed, fine-tuned.

Problem: unstructured pruning (`strata prune`) leaves a model as large and as slow on a CPU as
before; removing whole filters makes a smaller dense model, but costs more accuracy per cut.
Idea: remove `fraction` of the channels of every channel group (`compression/channel_pruning.py`),
ranked by filter L1 norm (Li et al. 2017) or by BatchNorm |gamma| (network slimming, Liu et al.
2017, optionally after `slimming_epochs` of the recipe with the `network_slimming` L1 penalty on
the scales), and write the narrower widths into model.json, so the derived run is rebuilt by the
model's own constructor. Then, unless `--finetune-epochs 0`, train the parent's own recipe for
that many epochs from the pruned weights (the `pretrained` callback, head kept) at
`finetune_lr_scale` times its learning rate, as `strata prune` does. run.json records the test
accuracy before pruning, right after the cut and after fine-tuning, and the parameter counts.
The training runs (`tools/retrain.py`) are written to a temporary folder and removed once their weights are taken.
"""

from __future__ import annotations

from typing import Any, Literal

from deepstrata.errors import UserError
from deepstrata.registry import register_tool
from deepstrata.run.run import Run
from deepstrata.tools.base import Derived, phase
from deepstrata.tools.retrain import recipe_lr, retrain, split_accuracy

# Callbacks of the parent's recipe that a fine-tuning run must not inherit: the weights come
# from the pruned model, and the sparsity penalty belongs before the cut, not after it.
_REPLACED = ("keep_sparsity", "network_slimming")


def _parameters(model: Any) -> int:
    return sum(p.numel() for p in model.parameters())


@register_tool("prune_channels", kind="transformation")
def prune_channels(
    run: Run,
    *,
    fraction: float = 0.5,
    criterion: Literal["l1", "slimming"] = "l1",
    scope: Literal["all", "inner"] = "all",
    finetune_epochs: int = 2,
    finetune_lr_scale: float = 0.1,
    slimming_epochs: int = 0,
    slimming_strength: float = 1e-4,
) -> Derived:
    """Remove whole channels (filters) and rewire the layers that read them, then fine-tune.

    fraction: the fraction of each channel group's channels removed (0.5: every group halved).
    criterion: l1 (filter L1 norm, Li et al. 2017) or slimming (BatchNorm |gamma|, Liu et al. 2017).
    scope: all (ResNet: residual groups too, kept or removed together) or inner (ResNet: only each block's inner channels).
    finetune_epochs: epochs of the run's own recipe from the pruned weights; 0 skips fine-tuning.
    finetune_lr_scale: the fine-tuning (and slimming) learning rate as a fraction of the recipe's.
    slimming_epochs: with criterion slimming, epochs of the recipe with the L1 penalty on BN scales before the cut.
    slimming_strength: the weight of that penalty (Liu et al. 2017: 1e-5 to 1e-4).
    """
    from deepstrata.compression.channel_pruning import channel_plan, channel_scores
    from deepstrata.compression.channel_pruning import prune_channels as cut
    from deepstrata.tools.predictions import require_classifier

    require_classifier(run, "prune_channels")
    if finetune_epochs < 0 or finetune_lr_scale <= 0 or slimming_epochs < 0:
        raise UserError(
            f"prune_channels: finetune_epochs and slimming_epochs must be >= 0 and finetune_lr_scale > 0, "
            f"got {finetune_epochs}, {slimming_epochs}, {finetune_lr_scale}"
        )
    if slimming_epochs and criterion != "slimming":
        raise UserError(f"prune_channels: slimming_epochs={slimming_epochs} trains for criterion slimming; pass --criterion slimming or drop it")
    model = run.model().eval()
    architecture, kwargs = run.spec["architecture"], dict(run.spec["kwargs"])
    for group in channel_plan(model, scope=scope).groups:  # an unsupported model or a slimming without BN fails before any work
        channel_scores(group, criterion, model_name=type(model).__name__)
    lr = recipe_lr(run, finetune_lr_scale)
    phase("prune_channels: test accuracy before pruning")
    metrics: dict[str, float] = {"test/accuracy_before": split_accuracy(run, model), "prune/parameters_before": _parameters(model)}
    source = model
    if slimming_epochs:
        phase(f"prune_channels: {slimming_epochs} epoch(s) with the L1 penalty {slimming_strength:g} on the BatchNorm scales")
        extra = [{"name": "network_slimming", "strength": slimming_strength}]
        source, _ = retrain(run, model.state_dict(), callbacks=extra, epochs=slimming_epochs, lr_scale=finetune_lr_scale, replaced=_REPLACED, label="prune_channels")
        metrics["test/accuracy_slimmed"] = split_accuracy(run, source)
    pruned = cut(source, architecture=architecture, kwargs=kwargs, fraction=fraction, criterion=criterion, scope=scope)
    phase(f"prune_channels: {pruned.fraction_removed:.0%} of the channels removed ({criterion}); test accuracy")
    metrics["test/accuracy_pruned"] = split_accuracy(run, pruned.model.eval())
    metrics["prune/channels_removed"] = pruned.fraction_removed
    metrics["prune/parameters"] = _parameters(pruned.model)
    tuned = pruned.model.eval()
    if finetune_epochs:
        phase(f"prune_channels: fine-tuning {finetune_epochs} epoch(s) at lr {lr:g}")
        section = {"name": pruned.architecture, **pruned.kwargs}
        tuned, result = retrain(run, pruned.model.state_dict(), model=section, epochs=finetune_epochs, lr_scale=finetune_lr_scale, replaced=_REPLACED, label="prune_channels")
        metrics["test/accuracy"] = float(result["test/accuracy"])
    else:
        metrics["test/accuracy"] = metrics["test/accuracy_pruned"]
    if run.experiment().data.val is not None:  # for choosing fraction or fine-tuning settings on validation, not test
        metrics["val/accuracy_before"], metrics["val/accuracy"] = split_accuracy(run, model, "val"), split_accuracy(run, tuned, "val")
    record = {
        "fraction": fraction,
        "criterion": criterion,
        "scope": scope,
        "widths": {name: list(w) for name, w in pruned.widths.items()},  # group -> [kept, of]
        "parent_architecture": architecture,
        "notes": pruned.notes,
        "finetune_epochs": finetune_epochs,
        "finetune_lr": lr if finetune_epochs or slimming_epochs else 0.0,
        "slimming_epochs": slimming_epochs,
    }
    spec = {"architecture": pruned.architecture, "kwargs": pruned.kwargs, "channel_pruning": record}
    return Derived(model=tuned, spec_updates=spec, metrics=metrics)
