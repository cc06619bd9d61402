"""Hybrids of a tabular network and gradient-boosted trees, scored on the run's own split.

Problem: on tables, gradient-boosted trees often beat networks (Grinsztajn et al. 2022), while
a network learns something the trees cannot: dense embeddings of categories, and a smooth
score. Production pipelines combine the two rather than choose, but a combination chosen by
looking at test scores, or fitted on a different split than the network, proves nothing.
Idea: from a finished tabular classifier run, on exactly its train/validation/test split:
(a) embeddings -> GBDT (for a network with learned categorical embeddings, `tabular_mlp`):
    those embeddings, beside the numeric columns, as the features of a HistGradientBoosting
    model fitted on the training rows (entity embeddings reused by trees, Guo & Berkhahn 2016;
    the embeddings were learned on those same training rows, so the trees see no validation
    or test row);
(b) stacked blend (any classifier, e.g. also `ft_transformer`):
    p = w * p_network + (1 - w) * p_trees, the trees being HistGradientBoosting
    on the raw table (native categorical splits), with the weight w chosen on the VALIDATION
    split (lowest log loss over w = 0, 0.05, ..., 1) and only then scored on test.
Every candidate is reported with validation and test accuracy and AUROC beside the network
and the plain trees, so the choice is visible and the test numbers are read last.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from deepstrata.baselines.classical import categorical_columns
from deepstrata.errors import UserError

BLEND_GRID = np.round(np.linspace(0.0, 1.0, 21), 2)


@dataclass
class HybridResult:
    """Rows of (model, split metrics), the chosen blend weight and the validation log loss at each weight."""

    rows: list[dict[str, Any]]
    blend_weight: float
    blend_curve: list[dict[str, float]] = field(default_factory=list)
    probabilities: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)  # model -> split -> (N, K)


def split_arrays(dataset: Any) -> tuple[Any, np.ndarray]:
    """A split's inputs (N, F) float32 torch tensor and labels (N,) numpy, in the split's row order."""
    from deepstrata.baselines.classical import split_tensors

    x, y = split_tensors(dataset)
    return x.float(), y.numpy()


def scores(probs: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Accuracy, AUROC (binary: of class 1; more classes: one-vs-rest macro) and log loss of (N, K) probabilities."""
    from sklearn.metrics import log_loss, roc_auc_score

    labels = list(range(probs.shape[1]))
    out = {"accuracy": float((probs.argmax(1) == y).mean()), "log_loss": float(log_loss(y, np.clip(probs, 1e-12, 1), labels=labels))}
    if len(np.unique(y)) == probs.shape[1]:
        out["auroc"] = float(roc_auc_score(y, probs[:, 1]) if probs.shape[1] == 2 else roc_auc_score(y, probs, multi_class="ovr", labels=labels))
    return out


def choose_blend_weight(p_net: np.ndarray, p_trees: np.ndarray, y: np.ndarray, grid: np.ndarray = BLEND_GRID) -> tuple[float, list[dict[str, float]]]:
    """The w of w * p_net + (1 - w) * p_trees with the lowest log loss on (validation) labels y; ties go to the smaller w."""
    curve = [{"weight": float(w), "log_loss": scores(w * p_net + (1 - w) * p_trees, y)["log_loss"]} for w in grid]
    best = min(curve, key=lambda c: (round(c["log_loss"], 12), c["weight"]))
    return best["weight"], curve


def network_inputs(model: Any, x: Any) -> np.ndarray:
    """(N, numeric + sum of embedding dims): the numeric columns beside the network's learned embeddings of the categories."""
    import torch

    with torch.no_grad():
        return model.embed(x).double().numpy()


def fit_hybrids(run: Any, *, seed: int = 0, n_threads: int = 1) -> HybridResult:
    """Network, trees, embeddings -> trees (when the network has them) and the validation-weighted blend, on the run's val and test splits."""
    import torch
    from sklearn.ensemble import HistGradientBoostingClassifier
    from threadpoolctl import threadpool_limits

    data = run.experiment().data
    model = run.model().eval()
    embeds = hasattr(model, "categorical_embeddings")  # tabular_mlp: its embeddings can feed the trees
    if not categorical_columns(data.input_spec) and not embeds:
        raise UserError(f"hybrid: '{run.path}' is a {run.architecture} run on '{data.name}', which is no table with categorical columns; the hybrids are for the tabular datasets (adult, german_credit) and models (tabular_mlp, ft_transformer)")
    if data.val is None:
        raise UserError(f"hybrid: '{run.path}' has no validation split to choose the blend weight on; train it with data.val_fraction > 0")
    splits = {name: split_arrays(getattr(data, name)) for name in ("train", "val", "test")}
    categorical = categorical_columns(data.input_spec)
    probs: dict[str, dict[str, np.ndarray]] = {"network": {}, "gradient_boosting": {}, **({"embeddings_gbdt": {}} if embeds else {})}
    with torch.no_grad():
        for name, (x, _) in splits.items():
            probs["network"][name] = torch.softmax(model(x).double(), dim=1).numpy()
    y_train = splits["train"][1]
    with threadpool_limits(limits=n_threads):
        trees = HistGradientBoostingClassifier(random_state=seed, categorical_features=categorical or None)
        trees.fit(splits["train"][0].double().numpy(), y_train)
        for name, (x, _) in splits.items():
            probs["gradient_boosting"][name] = trees.predict_proba(x.double().numpy())
        if embeds:
            embedded = HistGradientBoostingClassifier(random_state=seed)
            embedded.fit(network_inputs(model, splits["train"][0]), y_train)
            for name, (x, _) in splits.items():
                probs["embeddings_gbdt"][name] = embedded.predict_proba(network_inputs(model, x))
    weight, curve = choose_blend_weight(probs["network"]["val"], probs["gradient_boosting"]["val"], splits["val"][1])
    probs["stacked_blend"] = {name: weight * probs["network"][name] + (1 - weight) * probs["gradient_boosting"][name] for name in splits}
    rows = []
    for name, by_split in probs.items():
        row: dict[str, Any] = {"model": name}
        for split in ("val", "test"):
            row.update({f"{split}_{k}": round(v, 5) for k, v in scores(by_split[split], splits[split][1]).items()})
        rows.append(row)
    return HybridResult(rows=rows, blend_weight=weight, blend_curve=curve, probabilities=probs)
