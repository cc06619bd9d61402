"""Adversarial training: classification trained on the worst inputs of an eps-ball, not the clean ones.

Problem: a classifier trained on clean inputs is wrong on almost every input an attacker moves by
an imperceptible eps (PGD drives a standard MNIST model to ~0% accuracy at eps = 0.3).
Idea: make training a min-max game: each step crafts adversarial examples against the current
model with a registered attack (attacks/) and trains on them. Two defences:
- `pgd`: minimise the loss at the attack's worst point of the ball (Madry et al. 2018, "Towards
  Deep Learning Models Resistant to Adversarial Attacks"); with `attack: fgsm` and
  `random_start: true` this is Wong, Rice & Kolter 2020's fast adversarial training;
- `trades`: minimise `loss(f(x), y) + beta * KL(f(x) || f(x'))`, where the attack maximises the
  KL term alone (Zhang et al. 2019, "Theoretically Principled Trade-off between Robustness and
  Accuracy"), trading clean accuracy for smoothness with `beta`. Here the adversary starts
  from a uniform random point of the ball (the paper: x + 0.001 N(0, 1)).

eps and step_size are in raw pixel units in [0, 1] (attacks/base.py), whatever the run's
normalisation: the input box and the unit are derived from the data's input spec. The attack
runs with the model in eval mode and the mode is restored afterwards: BatchNorm layers then
neither update their running statistics with the attack's many forwards nor make the
perturbation depend on the rest of the batch, dropout is off, and the example is adversarial
for the model as it will be used; the training forward that follows runs in train mode.
Training metrics (`train/accuracy`) are measured on the crafted examples, i.e. robust accuracy
against the training attack; validation and test metrics stay clean. The attack's random
starts draw from torch's generator, which the recipe's seed sets (as dropout does). The
throughput the trainer reports includes the attack's cost.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Literal

import torch
import torch.nn.functional as F

from deepstrata.attacks.base import input_box
from deepstrata.errors import UserError
from deepstrata.registry import register_task, registry
from deepstrata.tasks.base import StepOutput
from deepstrata.tasks.classification import ClassificationTask, hard_labels

Defence = Literal["pgd", "trades"]


def kl_per_example(logits: torch.Tensor, clean_probs: torch.Tensor) -> torch.Tensor:
    """KL(p_clean || softmax(logits)) per example, (N,): what the TRADES adversary maximises."""
    return F.kl_div(F.log_softmax(logits, dim=1), clean_probs, reduction="none").sum(dim=1)


def madry_step(task: AdversarialClassificationTask, x: torch.Tensor, y: torch.Tensor) -> StepOutput:
    """PGD adversarial training (Madry et al. 2018): the loss at the attack's point of the ball."""
    x_adv = task.craft(x, y)
    logits = task.model(x_adv)  # (N, K)
    return StepOutput(loss=task.loss_fn(logits, y), batch_size=x.shape[0], preds=logits, target=hard_labels(y))


def trades_step(task: AdversarialClassificationTask, x: torch.Tensor, y: torch.Tensor) -> StepOutput:
    """TRADES (Zhang et al. 2019): loss(f(x), y) + beta * KL(f(x) || f(x')), x' maximising the KL."""
    with task.attacking(), torch.no_grad():
        clean_probs = F.softmax(task.model(x), dim=1)  # the adversary's fixed target, (N, K)
    x_adv = task.craft(x, clean_probs, loss=kl_per_example)
    logits, logits_adv = task.model(x), task.model(x_adv)
    robust = F.kl_div(F.log_softmax(logits_adv, dim=1), F.softmax(logits, dim=1), reduction="batchmean")
    loss = task.loss_fn(logits, y) + task.beta * robust
    return StepOutput(loss=loss, batch_size=x.shape[0], preds=logits_adv, target=hard_labels(y))


# defence name -> its training step (the task's `defence` argument picks one)
DEFENCES: dict[str, Callable[[AdversarialClassificationTask, torch.Tensor, torch.Tensor], StepOutput]] = {
    "pgd": madry_step,
    "trades": trades_step,
}


class AdversarialClassificationTask(ClassificationTask):
    """Classification whose training steps see adversarial examples; evaluation stays clean."""

    kind = "adversarial_classification"

    def __init__(
        self,
        model: Any,
        loss: Any,
        metrics: dict[str, Any],
        *,
        input_spec: Mapping[str, Any] | None = None,
        defence: str = "pgd",
        attack: str = "pgd",
        eps: float = 0.3,
        steps: int = 7,
        step_size: float | None = None,
        random_start: bool = True,
        beta: float = 6.0,
    ):
        super().__init__(model, loss, metrics)
        if defence not in DEFENCES:
            raise UserError(f"adversarial_classification: unknown defence '{defence}' (choices: {', '.join(DEFENCES)})")
        self.attack_fn = registry("attack").get(attack)
        accepted = inspect.signature(self.attack_fn).parameters
        if steps < 1 or beta < 0:
            raise UserError(f"adversarial_classification: steps must be >= 1 and beta >= 0, got steps={steps}, beta={beta}")
        if DEFENCES[defence] is trades_step and "loss" not in accepted:
            raise UserError(f"adversarial_classification: defence trades needs an attack that maximises a given loss (pgd, fgsm); '{attack}' takes none")
        if DEFENCES[defence] is trades_step and not random_start:
            raise UserError("adversarial_classification: defence trades needs random_start: true (the KL's gradient is zero at x' = x, so the attack would not move)")
        self.defence, self.attack_name, self.eps, self.beta = defence, attack, float(eps), float(beta)
        options = {"steps": steps, "step_size": step_size, "random_start": random_start}
        self.attack_options = {k: v for k, v in options.items() if k in accepted}
        # The data's live input spec: a `normalize` transform adds itself to it when the loaders are built.
        self._input_spec = input_spec

    @contextlib.contextmanager
    def attacking(self) -> Iterator[None]:
        """The model in eval mode for the block (BatchNorm statistics frozen, dropout off), then as it was."""
        was_training = self.model.training
        self.model.eval()
        try:
            yield
        finally:
            self.model.train(was_training)

    def craft(self, x: torch.Tensor, y: torch.Tensor, *, loss: Any = None) -> torch.Tensor:
        """Adversarial examples for a batch: the task's attack at eps (raw units) inside the input box."""
        if self._input_spec is None:
            raise RuntimeError("adversarial_classification: no input spec to derive the input box from; build the task from a recipe")
        lower, upper, unit = (t.to(x) for t in input_box(self._input_spec, x.shape[1:]))
        extra = {"loss": loss} if loss is not None else {}
        with self.attacking():
            return self.attack_fn(self.model, x, y, eps=self.eps, lower=lower, upper=upper, unit=unit, **self.attack_options, **extra)

    def training_step(self, batch: Any) -> StepOutput:
        x, y = batch
        out = DEFENCES[self.defence](self, x, y)
        self.update_metrics("train", out)
        return out


@register_task("adversarial_classification")
def adversarial_classification(
    *,
    model: Any,
    loss: Any,
    metrics: dict[str, Any],
    data: Any,
    defence: Defence = "pgd",
    attack: str = "pgd",
    eps: float = 0.3,
    steps: int = 7,
    step_size: float | None = None,
    random_start: bool = True,
    beta: float = 6.0,
) -> AdversarialClassificationTask:
    """Adversarial training: PGD (Madry et al. 2018) or TRADES (Zhang et al. 2019) on a registered attack; eps in raw [0, 1] units."""
    return AdversarialClassificationTask(
        model,
        loss,
        metrics,
        input_spec=data.input_spec,
        defence=defence,
        attack=attack,
        eps=eps,
        steps=steps,
        step_size=step_size,
        random_start=random_start,
        beta=beta,
    )
