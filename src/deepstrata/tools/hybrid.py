"""`strata hybrid RUN`: a tabular network beside gradient-boosted trees, and the two combined.

Problem: whether a tabular network, boosted trees or a combination of both should serve a
table is a question about one split, answered once the network is trained.
Idea: an analysis of a finished tabular run (`tabular_mlp`, `ft_transformer`, ...) that fits
the hybrids of baselines/hybrid.py on the run's training rows (a `tabular_mlp`'s categorical
embeddings fed to HistGradientBoosting; a blend of the network's and the trees' probabilities
whose weight is chosen on the validation split), and reports validation and test accuracy, AUROC and log loss
of each beside the network and the plain trees. The run is not changed.
"""

from __future__ import annotations

from deepstrata.registry import register_tool
from deepstrata.run.run import Run
from deepstrata.tools.base import Analysis, phase
from deepstrata.tools.predictions import require_classifier


@register_tool("hybrid", kind="analysis")
def hybrid(run: Run, *, seed: int = 0) -> Analysis:
    """Embeddings -> gradient boosting and a validation-weighted network/trees blend, beside both, on the run's split.

    seed: the random state of the gradient-boosting models.
    """
    from deepstrata.baselines.hybrid import fit_hybrids

    require_classifier(run, "hybrid")
    phase("hybrid: fitting gradient boosting on the raw table (and on learned embeddings, if the network has them)")
    result = fit_hybrids(run, seed=seed)
    metrics = {"blend_weight": result.blend_weight}
    for row in result.rows:
        for key, value in row.items():
            if key != "model":
                split, metric = key.split("_", 1)
                metrics[f"{split}/{row['model']}/{metric}"] = value
    by = {row["model"]: row for row in result.rows}
    best_val = max(result.rows, key=lambda r: r["val_accuracy"])["model"]
    summary = (
        f"Blend weight w = {result.blend_weight:.2f} on the network (chosen on validation log loss). "
        f"Test accuracy: network {by['network']['test_accuracy']:.4f}, gradient boosting {by['gradient_boosting']['test_accuracy']:.4f}, "
        + (f"embeddings -> GBDT {by['embeddings_gbdt']['test_accuracy']:.4f}, " if "embeddings_gbdt" in by else "")
        + f"stacked blend {by['stacked_blend']['test_accuracy']:.4f}. "
        + f"Best on validation accuracy: {best_val}."
    )
    return Analysis(metrics=metrics, tables={"hybrid": result.rows, "blend_weight_on_validation": result.blend_curve}, summary=summary)
