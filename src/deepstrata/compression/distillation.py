"""Knowledge distillation: a small student trained on a large teacher's softened predictions.

Problem: a small network trained on hard labels alone learns less than it could hold. A
trained teacher knows more than the labels say: which wrong classes are plausible for an
input (a 2 that looks like a 7). The labels throw that away.
Idea (Hinton, Vinyals & Dean 2015, "Distilling the Knowledge in a Neural Network"): train the
student on a mix of two losses.
- The teacher's probabilities at a temperature T > 1, p_t = softmax(z_t / T), which spreads
  mass onto the plausible wrong classes. This soft-target term is KL(p_t || softmax(z_s / T)).
- The usual loss on the labels.

The loss is `alpha * T^2 * KL + (1 - alpha) * hard_loss`. The T^2 keeps the soft term's
gradients the same size as T changes, since they shrink as 1/T^2.

A recipe turns any classification recipe into a distilled one:
`task: {name: distillation, teacher: RUN_DIR, temperature: 4, alpha: 0.9}`. `strata distill
TEACHER STUDENT_RECIPE` is the same. Details:
- The teacher is a finished run. It is loaded from its safetensors on the first training step,
  frozen, and kept outside the task's modules, so it is neither trained nor saved.
- Evaluation, prediction and every tool see an ordinary classifier.
- The teacher must take the same inputs and predict the same classes; this is checked on the
  first batch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from deepstrata.errors import UserError
from deepstrata.registry import register_task
from deepstrata.tasks.base import StepOutput
from deepstrata.tasks.classification import ClassificationTask, hard_labels


def soft_target_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """T^2 * KL(softmax(z_t / T) || softmax(z_s / T)), averaged over the batch."""
    t = float(temperature)
    log_p_student = F.log_softmax(student_logits / t, dim=1)
    p_teacher = F.softmax(teacher_logits / t, dim=1)
    return F.kl_div(log_p_student, p_teacher, reduction="batchmean") * t * t


class _Frozen:
    """Holds the teacher outside nn.Module registration: not a parameter, not in the state dict."""

    def __init__(self, model: nn.Module):
        self.model = model


class DistillationTask(ClassificationTask):
    """Classification whose training loss also pulls the student towards a teacher run's soft targets."""

    def __init__(self, model: nn.Module, loss: nn.Module, metrics: dict[str, Any], *, teacher: str, temperature: float = 4.0, alpha: float = 0.9):
        super().__init__(model, loss, metrics)
        if temperature <= 0:
            raise UserError(f"distillation: temperature must be positive, got {temperature}")
        if not 0.0 <= alpha <= 1.0:
            raise UserError(f"distillation: alpha (the soft-target weight) must be in [0, 1], got {alpha}")
        if not (Path(teacher) / "model.json").is_file():
            raise UserError(f"distillation: teacher '{teacher}' is not a finished run directory (no model.json); train the teacher first")
        self.teacher_dir, self.temperature, self.alpha = str(teacher), float(temperature), float(alpha)
        self._teacher: _Frozen | None = None

    @classmethod
    def for_inference(cls, model: nn.Module, spec: Any) -> ClassificationTask:
        """A distilled model predicts like any classifier: no teacher is needed after training."""
        return ClassificationTask(model, nn.Identity(), {})

    def teacher(self, device: torch.device) -> nn.Module:
        """The teacher's model, loaded once, frozen, in eval mode, on `device`."""
        if self._teacher is None:
            from deepstrata.run.artifact import load_model

            model, _ = load_model(self.teacher_dir)
            model.eval().requires_grad_(False)
            self._teacher = _Frozen(model)
        model = self._teacher.model
        if next(model.parameters()).device != device:
            model.to(device)
        return model

    def training_step(self, batch: Any) -> StepOutput:
        x, y = batch
        logits = self.model(x)
        with torch.no_grad():
            teacher_logits = self.teacher(x.device)(x)
        if teacher_logits.shape != logits.shape:
            raise UserError(
                f"distillation: the teacher gives outputs of shape {tuple(teacher_logits.shape)}, the student "
                f"{tuple(logits.shape)}; a teacher must predict the same classes from the same inputs"
            )
        soft = soft_target_loss(logits, teacher_logits, self.temperature)
        hard = self.loss_fn(logits, y)
        loss = self.alpha * soft + (1.0 - self.alpha) * hard
        out = StepOutput(loss=loss, batch_size=x.shape[0], preds=logits, target=hard_labels(y))
        self.update_metrics("train", out)
        return out


@register_task("distillation")
def distillation(*, model: Any, loss: Any, metrics: dict[str, Any], teacher: str, temperature: float = 4.0, alpha: float = 0.9) -> DistillationTask:
    """Knowledge distillation (Hinton et al. 2015): alpha * T^2 * KL(teacher || student at T) + (1 - alpha) * loss on the labels.

    teacher: a finished classification run on the same data; temperature: T; alpha: the soft-target weight.
    """
    return DistillationTask(model, loss, metrics, teacher=teacher, temperature=temperature, alpha=alpha)
