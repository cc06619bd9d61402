"""Distillation of a language model: a small LM trained on a large one's next-token distributions.

Problem: next-token cross-entropy tells a language model only which character came next, not
which others were plausible there. After `def f(`, a teacher spreads its probability over
`x`, `s`, `a`, `)`; the one-hot target keeps a single one.
Idea (Hinton, Vinyals & Dean 2015, applied per token as in Sanh et al. 2019, "DistilBERT",
and Kim & Rush 2016's word-level KD): at every position t the teacher's distribution at
temperature T, softmax(z_t / T), is a soft target for the student's. The loss averages over
the N*T positions:

    loss = alpha * T^2 * mean_t KL(softmax(z_teacher,t / T) || softmax(z_student,t / T))
           + (1 - alpha) * mean_t CE(z_student,t, next token)

A recipe: `task: {name: lm_distillation, teacher: RUN_DIR, temperature: 2, alpha: 0.5}` on a
language-modelling recipe; `strata distill TEACHER STUDENT_RECIPE` picks this task when the
teacher is a language model. How the teacher is handled:
- it is loaded, frozen and kept out of the saved model as in `distillation.py`;
- its tokenizer must be the student's, which is checked when the task is built;
- its vocabulary must be the student's, which the first batch checks.
Validation and test metrics are the student's own next-token figures (bits per character), and
the distilled run is an ordinary language model: `generate`, `evaluate` and every tool treat it
as one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from deepstrata.compression.distillation import FrozenTeacher, check_settings, soft_target_loss
from deepstrata.data.tokenizers import FILENAME
from deepstrata.errors import UserError
from deepstrata.registry import register_task
from deepstrata.tasks.base import StepOutput, Task
from deepstrata.tasks.language_model import LanguageModelTask


class LanguageModelDistillationTask(LanguageModelTask):
    """Causal language modelling whose training loss also pulls each next-token distribution towards a teacher run's."""

    def __init__(self, model: nn.Module, loss: nn.Module, metrics: dict[str, Any], *, data: Any = None, teacher: str, temperature: float = 2.0, alpha: float = 0.5):
        super().__init__(model, loss, metrics, data=data)
        check_settings(teacher, temperature, alpha)
        self.teacher_dir, self.temperature, self.alpha = str(teacher), float(temperature), float(alpha)
        self._teacher = FrozenTeacher(self.teacher_dir)
        if data is not None and FILENAME in getattr(data, "artifacts", {}):
            path = Path(teacher) / FILENAME
            if not path.is_file():
                raise UserError(f"lm_distillation: teacher '{teacher}' has no {FILENAME}; the teacher must be a language-model run")
            if json.loads(path.read_text()) != json.loads(data.artifacts[FILENAME]):
                raise UserError(
                    f"lm_distillation: the teacher's tokenizer ({path}) is not the student's; train both on the same "
                    "data and tokenizer settings so that token i means the same thing to both"
                )

    @classmethod
    def for_inference(cls, model: nn.Module, spec: Any) -> Task:
        """A distilled language model predicts like any language model: no teacher is needed after training."""
        return LanguageModelTask.for_inference(model, spec)

    def teacher(self, device: torch.device) -> nn.Module:
        """The teacher's model, loaded once, frozen, in eval mode, on `device`."""
        return self._teacher.on(device)

    def training_step(self, batch: Any) -> StepOutput:
        x, y = batch
        # The parent's step computes the logits, their CE and the bits-per-char counters; a forward
        # hook keeps those logits, so the soft term needs no second pass through the student.
        caught: dict[str, torch.Tensor] = {}
        handle = self.model.register_forward_hook(lambda module, args, output: caught.update(logits=output))
        try:
            out = self.shared_step(batch)
        finally:
            handle.remove()
        logits = caught["logits"]  # (N, T, V)
        with torch.no_grad():
            teacher_logits = self.teacher(x.device)(x)
        if teacher_logits.shape != logits.shape:
            raise UserError(
                f"lm_distillation: the teacher gives logits of shape {tuple(teacher_logits.shape)}, the student "
                f"{tuple(logits.shape)}; a teacher must score the same vocabulary over the same windows"
            )
        soft = soft_target_loss(logits.flatten(0, 1), teacher_logits.flatten(0, 1), self.temperature)
        out.loss = self.alpha * soft + (1.0 - self.alpha) * out.loss  # out.loss: the recipe's next-token loss
        self.update_metrics("train", out)
        return out


@register_task("lm_distillation")
def lm_distillation(
    *, model: Any, loss: Any, metrics: dict[str, Any], data: Any = None, teacher: str, temperature: float = 2.0, alpha: float = 0.5
) -> LanguageModelDistillationTask:
    """Language-model distillation: alpha * T^2 * KL(teacher || student at T) per token + (1 - alpha) * next-token CE.

    teacher: a finished language-model run with the same tokenizer; temperature: T; alpha: the soft-target weight.
    """
    return LanguageModelDistillationTask(model, loss, metrics, data=data, teacher=teacher, temperature=temperature, alpha=alpha)
