"""`strata privacy-audit RUN`: can an attacker tell the run's training examples from unseen ones?

Problem: a model that memorised its training data answers its own training examples with
visibly lower loss than new ones, and whoever can query it learns who was in the training set
(membership inference, Shokri et al. 2017). Epsilon bounds that leak in theory; an audit
measures what an actual attack gets from this model.
Idea (the loss-threshold attack, Yeom et al. 2018): call an example a member when the model's
loss on it is low. Score equal numbers of members (the training split, without augmentation)
and non-members (the test split, never trained on), drawn at random from each, by minus their
loss, and report what every threshold achieves: the ROC AUC (0.5 is no leak), the true
positive rate at 0.1% and 1% false positives (Carlini et al. 2022 argue that the low-FPR
corner is what matters: an attack that is sure about a few people is a real leak even at AUC
0.5), and the membership advantage max(TPR - FPR) (Yeom et al.). A DP run's audit shows its
epsilon beside the attack: at (eps, delta)-DP no attack can reach TPR > e^eps * FPR + delta.

The attack proves a leak when it succeeds; when it fails it proves nothing about stronger
attacks (docs/privacy.md says what it can and cannot show).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Literal

from deepstrata.errors import UserError
from deepstrata.registry import register_tool
from deepstrata.run.run import Run
from deepstrata.tools.base import Analysis, phase
from deepstrata.tools.predictions import labelled_batches, require_classifier

if TYPE_CHECKING:  # pragma: no cover
    import torch

FPRS = (0.001, 0.01)  # the low false-positive rates reported, as in Carlini et al. 2022


@register_tool("privacy_audit", kind="analysis", report="privacy")
def privacy_audit(run: Run, *, nonmembers: Literal["test", "val"] = "test", limit: int = 0, seed: int = 0) -> Analysis:
    """Membership inference by the loss-threshold attack: AUC, TPR at 0.1% and 1% FPR, membership advantage.

    nonmembers: the split that supplies examples never trained on: test (the record), or val (to
    choose settings without looking at the test split).
    limit: members and non-members scored, each (0: as many as the smaller of the two splits).
    seed: which examples are drawn when a split is larger than that.
    """
    import torch

    require_classifier(run, "privacy-audit")
    if limit < 0:
        raise UserError(f"privacy-audit: limit must be >= 0, got {limit}; 0 scores as many as the smaller split holds")
    train, test = run.split("train"), run.split(nonmembers)
    if train is None or len(train) == 0 or test is None or len(test) == 0:
        fraction = "val_fraction" if nonmembers == "val" else "test_fraction"
        raise UserError(f"privacy-audit needs a training and a {nonmembers} split; '{run.path}' lacks one (check data.{fraction})")
    n = min(len(train), len(test), limit or math.inf)
    generator = torch.Generator().manual_seed(seed)
    phase(f"privacy-audit: losses of {n} training (member) and {n} {nonmembers} (non-member) examples")
    model = run.model().eval()
    members = _losses(run, model, train, n, generator)
    outsiders = _losses(run, model, test, n, generator)
    row = attack_scores(-members, -outsiders)
    metrics = {f"audit/loss_threshold/{k}": v for k, v in row.items()}
    metrics["audit/members"] = float(n)
    metrics["audit/train_loss_mean"] = float(members.mean())
    metrics[f"audit/{nonmembers}_loss_mean"] = float(outsiders.mean())
    strategy = (run.info or {}).get("strategy") or {}
    epsilon = strategy.get("epsilon") if strategy.get("name") == "dp_sgd" else None
    bound = ""
    if epsilon is not None:
        delta = float(strategy["delta"])
        metrics["audit/epsilon"] = float(epsilon)
        limit_tpr = min(1.0, math.exp(epsilon) * 0.01 + delta)
        bound = f" The run is ({epsilon:.3g}, {delta:g})-DP: no attack can exceed TPR {limit_tpr:.3g} at 1% FPR."
    summary = (
        f"Loss-threshold attack (Yeom et al. 2018) on {n} members (training split) and {n} non-members ({nonmembers} split): "
        f"AUC {row['auc']:.4f} (0.5: no leak), TPR {row['tpr_at_fpr_0.01']:.4f} at 1% FPR and {row['tpr_at_fpr_0.001']:.4f} at 0.1%, "
        f"membership advantage {row['advantage']:.4f}. Mean loss {metrics['audit/train_loss_mean']:.4f} on members, "
        f"{metrics[f'audit/{nonmembers}_loss_mean']:.4f} on non-members.{bound}"
    )
    table = [{"attack": "loss_threshold", **{k: round(v, 6) for k, v in row.items()}}]
    return Analysis(metrics=metrics, tables={"attacks": table}, figures={"roc": _roc_figure(-members, -outsiders, row["auc"])}, summary=summary)


def _losses(run: Run, model: Any, dataset: Any, n: int, generator: torch.Generator) -> torch.Tensor:
    """Per-example cross-entropy of `n` rows of `dataset` drawn with `generator`, through the evaluation collate."""
    import torch
    from torch.nn.functional import cross_entropy
    from torch.utils.data import DataLoader, Subset

    if n < len(dataset):
        dataset = Subset(dataset, torch.randperm(len(dataset), generator=generator)[:n].sort().values.tolist())
    test_loader = run.loader("test")
    loader = DataLoader(dataset, batch_size=test_loader.batch_size or 256, shuffle=False, collate_fn=getattr(test_loader, "collate_fn", None))
    out = []
    with torch.no_grad():
        for inputs, y in labelled_batches(run, loader=loader):
            out.append(cross_entropy(model(*inputs).float(), y, reduction="none"))
    return torch.cat(out)


def attack_scores(member_scores: torch.Tensor, outsider_scores: torch.Tensor) -> dict[str, float]:
    """AUC, TPR at each of FPRS and max(TPR - FPR) when a higher score means "member" (scikit-learn's ROC)."""
    import numpy as np
    from sklearn.metrics import roc_auc_score, roc_curve

    y = np.r_[np.ones(len(member_scores)), np.zeros(len(outsider_scores))]
    s = np.r_[member_scores.numpy(), outsider_scores.numpy()]
    fpr, tpr, _ = roc_curve(y, s)
    row = {"auc": float(roc_auc_score(y, s))}
    for target in FPRS:
        row[f"tpr_at_fpr_{target:g}"] = float(tpr[fpr <= target].max())  # the best threshold that keeps FPR within the target
    row["advantage"] = float((tpr - fpr).max())
    return row


def _roc_figure(member_scores: torch.Tensor, outsider_scores: torch.Tensor, auc: float) -> Any:
    import numpy as np
    from matplotlib.figure import Figure  # no pyplot: no global figure state
    from sklearn.metrics import roc_curve

    y = np.r_[np.ones(len(member_scores)), np.zeros(len(outsider_scores))]
    fpr, tpr, _ = roc_curve(y, np.r_[member_scores.numpy(), outsider_scores.numpy()])
    fig = Figure(figsize=(8, 3.2), layout="constrained")
    for i, scale in enumerate(("linear", "log")):
        ax = fig.add_subplot(1, 2, i + 1)
        ax.plot(fpr, tpr, label=f"loss threshold (AUC {auc:.3f})")
        ax.plot([1e-4, 1], [1e-4, 1], "k--", lw=0.8, label="chance")
        ax.set_xscale(scale)
        ax.set_yscale(scale)
        if scale == "log":
            ax.set_xlim(1e-4, 1)
            ax.set_ylim(1e-4, 1)
        ax.set_xlabel("false positive rate")
        ax.set_ylabel("true positive rate")
        ax.set_title(f"membership inference ROC ({scale})")
        ax.legend(fontsize=8)
    return fig
