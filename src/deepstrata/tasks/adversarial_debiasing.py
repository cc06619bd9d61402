"""Adversarial debiasing (Zhang, Lemoine & Mitchell 2018) as a training option.

Problem: reweighing changes what the model sees, not what it computes; a model can still
carry the group in its output (through proxies such as relationship = "Husband" in Adult).
Idea: train an adversary beside the classifier (the predictor) that tries to tell each
example's group from the predictor's output: the logit margin s = z_1 - z_0 for demographic
parity, and (s, s*y, s*(1 - y)) for equalised odds, so that what the label explains is not
held against the predictor. Each step:
- the adversary takes one step (its own Adam) to predict the group from the detached output;
- the predictor's weights W move along
  g = grad_W L_P - proj_{grad_W L_A} grad_W L_P - alpha * grad_W L_A,
  where L_P is the recipe's loss and L_A the adversary's cross-entropy. The projection term
  removes the part of the predictor's step that would help the adversary, and the last term
  pushes against it (the paper's equation; the projection is over all of W's entries at once).
The trainer's own optimizer applies g: the step returns a loss whose value is L_P and whose
gradient is g. The adversary lives in the task, not in the model, so the saved run is an
ordinary classifier. A recipe: `task: {name: adversarial_debiasing, group: sex, alpha: 1.0}`.

Limits: the group is read from the input's categorical column (fairness/groups.py), so it must
be a feature; the classifier must be binary (the margin is its output); the adversary is small
(logistic by default, as in the paper) and a stronger one may still find the group; the
adversary and its optimizer are not in the checkpoint, so a resumed run starts a fresh adversary.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from deepstrata.data.base import DataBundle
from deepstrata.errors import UserError
from deepstrata.fairness.groups import GroupColumn, group_column
from deepstrata.registry import register_task
from deepstrata.tasks.base import StepOutput
from deepstrata.tasks.classification import ClassificationTask, hard_labels

Objective = Literal["demographic_parity", "equalized_odds"]


def adversary_inputs(margin: torch.Tensor, y: torch.Tensor, objective: str) -> torch.Tensor:
    """What the adversary sees: (N, 1) margins for demographic parity, (N, 3) (s, s*y, s*(1-y)) for equalised odds."""
    s = margin[:, None]
    if objective == "demographic_parity":
        return s
    yf = y.to(s.dtype)[:, None]
    return torch.cat([s, s * yf, s * (1 - yf)], dim=1)


def debiased_gradient(grad_p: list[torch.Tensor], grad_a: list[torch.Tensor], alpha: float) -> list[torch.Tensor]:
    """grad_p - proj_{grad_a} grad_p - alpha * grad_a, the projection over all entries together."""
    dot = sum((p * a).sum() for p, a in zip(grad_p, grad_a))
    norm2 = sum((a * a).sum() for a in grad_a)
    coef = dot / norm2 if float(norm2) > 0 else torch.zeros(())
    return [p - coef * a - alpha * a for p, a in zip(grad_p, grad_a)]


class AdversarialDebiasingTask(ClassificationTask):
    """Binary classification trained against an adversary that predicts the group from the output."""

    def __init__(
        self,
        model: nn.Module,
        loss: nn.Module,
        metrics: dict[str, Any],
        *,
        data: DataBundle,
        group: str,
        alpha: float = 1.0,
        objective: Objective = "demographic_parity",
        adversary_hidden: int = 0,
        adversary_lr: float = 0.01,
    ):
        super().__init__(model, loss, metrics)
        if data.num_classes != 2:
            raise UserError(f"adversarial_debiasing: needs a binary classifier (its margin z_1 - z_0 is what the adversary sees); '{data.name}' has {data.num_classes} classes")
        if alpha < 0:
            raise UserError(f"adversarial_debiasing: alpha (the adversary term's weight) must be >= 0, got {alpha}")
        self.group: GroupColumn = group_column(data.input_spec, group, who="adversarial_debiasing")
        self.alpha, self.objective, self.adversary_lr = float(alpha), str(objective), float(adversary_lr)
        width, groups = (1 if objective == "demographic_parity" else 3), len(self.group.levels)
        self.adversary = nn.Linear(width, groups) if adversary_hidden <= 0 else nn.Sequential(nn.Linear(width, adversary_hidden), nn.ReLU(), nn.Linear(adversary_hidden, groups))
        self._adversary_optimizer: torch.optim.Optimizer | None = None
        self.adversary_loss = float("nan")  # the adversary's last training loss, for the curious

    @classmethod
    def for_inference(cls, model: nn.Module, spec: Any) -> ClassificationTask:
        """The debiased model predicts like any classifier: the adversary only shaped its training."""
        return ClassificationTask(model, nn.Identity(), {})

    def adversary_optimizer(self) -> torch.optim.Optimizer:
        if self._adversary_optimizer is None:
            self._adversary_optimizer = torch.optim.Adam(self.adversary.parameters(), lr=self.adversary_lr)
        return self._adversary_optimizer

    def training_step(self, batch: Any) -> StepOutput:
        x, y = batch
        labels = hard_labels(y)
        g = self.group.codes(x).to(x.device)
        logits = self.model(x)
        loss_p = self.loss_fn(logits, y)
        a_in = adversary_inputs(logits[:, 1] - logits[:, 0], labels, self.objective)
        # 1. the adversary learns to find the group in the (detached) output
        opt = self.adversary_optimizer()
        opt.zero_grad(set_to_none=True)
        adversary_loss = F.cross_entropy(self.adversary(a_in.detach()), g)
        adversary_loss.backward()
        opt.step()
        self.adversary_loss = float(adversary_loss.detach())
        # 2. the predictor's step: its gradient without the part that helps the adversary, minus alpha times the adversary's
        params = [p for p in self.model.parameters() if p.requires_grad]
        loss_a = F.cross_entropy(self.adversary(a_in), g)
        grad_p = torch.autograd.grad(loss_p, params, retain_graph=True, allow_unused=True)
        grad_a = torch.autograd.grad(loss_a, params, allow_unused=True)
        grad_p = [torch.zeros_like(p) if gp is None else gp for p, gp in zip(params, grad_p)]
        grad_a = [torch.zeros_like(p) if ga is None else ga for p, ga in zip(params, grad_a)]
        step = debiased_gradient(grad_p, grad_a, self.alpha)
        surrogate = sum((p * s.detach()).sum() for p, s in zip(params, step))
        loss = loss_p.detach() + surrogate - surrogate.detach()  # value L_P, gradient the debiased step
        self.adversary.zero_grad(set_to_none=True)  # the surrogate's backward must not touch the adversary
        out = StepOutput(loss=loss, batch_size=x.shape[0], preds=logits.detach(), target=labels)
        self.update_metrics("train", out)
        return out


@register_task("adversarial_debiasing")
def adversarial_debiasing(
    *,
    model: Any,
    loss: Any,
    metrics: dict[str, Any],
    data: Any,
    group: str,
    alpha: float = 1.0,
    objective: Objective = "demographic_parity",
    adversary_hidden: int = 0,
    adversary_lr: float = 0.01,
) -> AdversarialDebiasingTask:
    """Adversarial debiasing (Zhang et al. 2018): the predictor's gradient, less its projection on the adversary's and alpha times it.

    group: the categorical input column holding the group (a feature of the data); alpha: the adversary term's weight;
    objective: demographic_parity (the adversary sees the margin) or equalized_odds (also the label);
    adversary_hidden: 0 for a logistic adversary, else one hidden layer this wide; adversary_lr: its Adam step size.
    """
    return AdversarialDebiasingTask(
        model, loss, metrics, data=data, group=group, alpha=alpha, objective=objective, adversary_hidden=adversary_hidden, adversary_lr=adversary_lr
    )
