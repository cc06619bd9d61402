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
The likelihood-ratio attack (LiRA, Carlini et al. 2022, offline variant) judges each example
against itself: shadow models, the run's recipe trained on rows disjoint from every audited
example (tools/shadow_models.py), give the example's confidence phi = log(p_y / (1 - p_y))
under models that never saw it; the target's phi far above that Gaussian says "member". It
is what finds the few confidently memorised examples at low false-positive rates.

The attack proves a leak when it succeeds; when it fails it proves nothing about stronger
attacks (docs/privacy.md says what it can and cannot show).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Literal

from deepstrata.errors import UserError, did_you_mean
from deepstrata.registry import register_tool
from deepstrata.run.run import Run
from deepstrata.tools.base import Analysis, phase
from deepstrata.tools.predictions import labelled_batches, require_classifier
from deepstrata.tools.shadow_models import stacked, train_shadow

if TYPE_CHECKING:  # pragma: no cover
    import torch

FPRS = (0.001, 0.01)  # the low false-positive rates reported, as in Carlini et al. 2022


ATTACKS = ("loss_threshold", "lira")


@register_tool("privacy_audit", kind="analysis", report="privacy")
def privacy_audit(
    run: Run,
    *,
    attacks: list[str] = ["loss_threshold"],  # noqa: B006 - read, never mutated
    shadows: int = 4,
    nonmembers: Literal["test", "val"] = "test",
    limit: int = 0,
    seed: int = 0,
) -> Analysis:
    """Membership inference (loss threshold; LiRA with shadow models): AUC, TPR at 0.1% and 1% FPR, advantage.

    attacks: loss_threshold (Yeom et al. 2018) and/or lira (Carlini et al. 2022, offline, which trains
    `shadows` copies of the run's recipe: as many trainings as that).
    shadows: shadow models for lira, each trained on rows disjoint from every audited example.
    nonmembers: the split that supplies examples never trained on: test (the record), or val (to
    choose settings without looking at the test split).
    limit: members and non-members scored, each (0: as many as the smaller of the two splits).
    seed: which examples are drawn when a split is larger than that, and the shadows' data.
    """
    import torch

    require_classifier(run, "privacy-audit")
    unknown = [a for a in attacks if a not in ATTACKS]
    if unknown or not attacks:
        name = unknown[0] if unknown else ""
        raise UserError(f"privacy-audit: unknown attack '{name}'{did_you_mean(name, list(ATTACKS))} (choices: {', '.join(ATTACKS)})")
    if limit < 0:
        raise UserError(f"privacy-audit: limit must be >= 0, got {limit}; 0 scores as many as the smaller split holds")
    if "lira" in attacks and shadows < 2:
        raise UserError(f"privacy-audit: lira needs at least 2 shadow models to estimate each example's spread, got shadows={shadows}")
    if "lira" in attacks and run.derived_from:
        raise UserError(f"privacy-audit: lira retrains the run's recipe; '{run.path}' is a derived run: audit the run it was derived from")
    train, test = run.split("train"), run.split(nonmembers)
    if len(train) == 0 or len(test) == 0:
        fraction = "val_fraction" if nonmembers == "val" else "test_fraction"
        raise UserError(f"privacy-audit needs a training and a {nonmembers} split; '{run.path}' lacks one (check data.{fraction})")
    n = int(min(len(train), len(test), limit or math.inf))
    generator = torch.Generator().manual_seed(seed)
    member_rows, outsider_rows = _draw(len(train), n, generator), _draw(len(test), n, generator)
    phase(f"privacy-audit: {n} training (member) and {n} {nonmembers} (non-member) examples")
    model = run.model().eval()
    collate = getattr(run.loader("test"), "collate_fn", None)  # the run's evaluation transforms
    member_logits, member_y = _logits(run, model, train, member_rows, collate)
    outsider_logits, outsider_y = _logits(run, model, test, outsider_rows, collate)
    member_loss, outsider_loss = _ce(member_logits, member_y), _ce(outsider_logits, outsider_y)

    scores: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    if "loss_threshold" in attacks:
        scores["loss_threshold"] = (-member_loss, -outsider_loss)
    notes = []
    if "lira" in attacks:
        used = {"train": set(member_rows), nonmembers: set(outsider_rows)}
        pool_x, pool_y = _pool(run, used)
        size = min(len(train), len(pool_x))
        if size < 2:
            raise UserError(f"privacy-audit: lira needs rows outside the audited examples to train shadows on; '{run.path}' has {len(pool_x)}")
        phis_member, phis_outsider = [], []
        for k in range(shadows):
            phase(f"privacy-audit: training shadow model {k + 1}/{shadows} on {size} rows")
            pick = torch.randperm(len(pool_x), generator=generator)[:size]
            shadow = train_shadow(run, pool_x[pick], pool_y[pick], seed=run.recipe.seed + 1000 + k)
            phis_member.append(logit_confidence(_logits(run, shadow, train, member_rows, collate)[0], member_y))
            phis_outsider.append(logit_confidence(_logits(run, shadow, test, outsider_rows, collate)[0], outsider_y))
        scores["lira"] = lira_offline(
            logit_confidence(member_logits, member_y), logit_confidence(outsider_logits, outsider_y),
            torch.stack(phis_member), torch.stack(phis_outsider),
        )
        notes.append(f"LiRA (Carlini et al. 2022, offline, global variance): {shadows} shadow models, each the run's recipe trained on "
                     f"{size} rows disjoint from every audited example.")

    metrics: dict[str, float] = {}
    table = []
    for name, (s_in, s_out) in scores.items():
        row = attack_scores(s_in, s_out)
        metrics.update({f"audit/{name}/{k}": v for k, v in row.items()})
        table.append({"attack": name, **{k: round(v, 6) for k, v in row.items()}})
    metrics["audit/members"] = float(n)
    metrics["audit/train_loss_mean"] = float(member_loss.mean())
    metrics[f"audit/{nonmembers}_loss_mean"] = float(outsider_loss.mean())
    strategy = (run.info or {}).get("strategy") or {}
    epsilon = strategy.get("epsilon") if strategy.get("name") == "dp_sgd" else None
    bound = ""
    if epsilon is not None:
        delta = float(strategy["delta"])
        metrics["audit/epsilon"] = float(epsilon)
        limit_tpr = min(1.0, math.exp(epsilon) * 0.01 + delta)
        bound = f" The run is ({epsilon:.3g}, {delta:g})-DP: no attack can exceed TPR {limit_tpr:.3g} at 1% FPR."
    found = " ".join(
        f"{r['attack']}: AUC {r['auc']:.4f}, TPR {r['tpr_at_fpr_0.01']:.4f} at 1% FPR and {r['tpr_at_fpr_0.001']:.4f} at 0.1%, advantage {r['advantage']:.4f}."
        for r in table
    )
    summary = (
        f"Membership inference on {n} members (training split) and {n} non-members ({nonmembers} split); AUC 0.5 is no leak. {found} "
        f"Mean loss {float(member_loss.mean()):.4f} on members, {float(outsider_loss.mean()):.4f} on non-members. "
        + " ".join(notes) + bound
    )
    return Analysis(metrics=metrics, tables={"attacks": table}, figures={"roc": _roc_figure(scores)}, summary=summary.strip())


def _draw(size: int, n: int, generator: torch.Generator) -> list[int]:
    """`n` of `size` row positions, sorted: all of them when n == size, else a seeded draw."""
    import torch

    if n >= size:
        return list(range(size))
    return torch.randperm(size, generator=generator)[:n].sort().values.tolist()


def _logits(run: Run, model: Any, dataset: Any, rows: list[int], collate: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """The model's logits and the hard labels of `rows` of `dataset`, through `collate` (the test loader's)."""
    import torch
    from torch.utils.data import DataLoader, Subset

    loader = DataLoader(Subset(dataset, rows), batch_size=run.recipe.data.eval_batch_size, shuffle=False, collate_fn=collate)
    out, ys = [], []
    with torch.no_grad():
        for inputs, y in labelled_batches(run, loader=loader):
            out.append(model(*inputs).float())
            ys.append(y)
    return torch.cat(out), torch.cat(ys)


def _ce(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    from torch.nn.functional import cross_entropy

    return cross_entropy(logits, y, reduction="none")


def logit_confidence(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """phi = log(p_y / (1 - p_y)), computed as z_y - logsumexp_{j != y} z_j (stable where p_y -> 1)."""
    import torch

    true = logits.gather(1, y[:, None]).squeeze(1)
    others = logits.scatter(1, y[:, None], float("-inf"))
    return true - torch.logsumexp(others, dim=1)


def lira_offline(
    phi_member: torch.Tensor, phi_outsider: torch.Tensor, shadow_member: torch.Tensor, shadow_outsider: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Offline LiRA scores: how far above the shadow models' ("OUT") confidence on each example the target's is.

    shadow_*: (K, n) confidences of K shadows that never trained on the examples. Each example's
    OUT distribution is a Gaussian with its own mean over the shadows and one variance pooled
    over all examples (Carlini et al.'s choice when shadows are few); the score is the z-value
    (phi - mu) / sigma, whose Gaussian CDF is their one-sided likelihood test (same ranking).
    """
    import torch

    shadows = torch.cat([shadow_member, shadow_outsider], dim=1)
    mu = shadows.mean(0)
    sigma = shadows.var(0, unbiased=True).mean().sqrt().clamp_min(1e-6)
    z = (torch.cat([phi_member, phi_outsider]) - mu) / sigma
    return z[: len(phi_member)], z[len(phi_member):]


def _pool(run: Run, used: dict[str, set[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Every row of the run's train, val and test splits that is not an audited example, stacked."""
    import torch

    xs, ys = [], []
    for name in ("train", "val", "test"):
        try:
            dataset = run.split(name)
        except UserError:  # the recipe has no such split
            continue
        rows = [i for i in range(len(dataset)) if i not in used.get(name, set())]
        if rows:
            x, y = stacked(dataset, rows)
            xs.append(x)
            ys.append(y)
    if not xs:
        return torch.empty(0), torch.empty(0, dtype=torch.long)
    return torch.cat(xs), torch.cat(ys)


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


def _roc_figure(scores: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> Any:
    import numpy as np
    from matplotlib.figure import Figure  # no pyplot: no global figure state
    from sklearn.metrics import roc_auc_score, roc_curve

    fig = Figure(figsize=(8, 3.2), layout="constrained")
    for i, scale in enumerate(("linear", "log")):
        ax = fig.add_subplot(1, 2, i + 1)
        for name, (s_in, s_out) in scores.items():
            y = np.r_[np.ones(len(s_in)), np.zeros(len(s_out))]
            s = np.r_[s_in.numpy(), s_out.numpy()]
            fpr, tpr, _ = roc_curve(y, s)
            ax.plot(fpr, tpr, label=f"{name} (AUC {roc_auc_score(y, s):.3f})")
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
