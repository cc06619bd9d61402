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
  frozen, and kept outside the task's modules, so it is neither trained nor saved. It is built
  in a forked RNG, so loading it draws nothing from the student's random stream (dropout).
- Evaluation, prediction and every tool see an ordinary classifier.
- The teacher must take the same inputs and predict the same classes; this is checked on the
  first batch.

Feature distillation (FitNets, Romero et al. 2015; `fitnets.py`) is an option:
`hint_weight: 0.1` adds `hint_weight * hint_loss` to the loss above, with the hint and guided
layers chosen by stage index (`hint_layer`, `guided_layer`). The paper trains in two stages:
the lower student with the hint alone, then the whole student by KD. Here both are one joint
stage, with the hint term on from the first step to the last. The regressor is trained by the
student's optimizer, on its schedule, and lives in the task, not in the model:
- the saved run is the plain student;
- the regressor is not in checkpoints, so a resumed run restarts it from its initialisation.
With FitNets on, the teacher is loaded when the task is built, so that the regressor's shape is
known before the optimizer is made and a hint that cannot fit fails before step 1.

Language models have their own task, `lm_distillation` (`lm_distillation.py`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import default_collate

from deepstrata.compression.fitnets import build_regressor, catch_stage, choose_stages, hint_loss, stage_shapes
from deepstrata.data.base import DataBundle
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


class FrozenTeacher:
    """A finished run's model, loaded on first use, frozen and in eval mode.

    Tasks hold it as a plain attribute, outside nn.Module registration: not a parameter, not
    in the state dict, so it is neither trained nor saved.
    """

    def __init__(self, run_dir: str):
        self.run_dir = run_dir
        self.model: nn.Module | None = None

    def on(self, device: torch.device) -> nn.Module:
        """The teacher's model on `device` (loaded from its safetensors the first time)."""
        if self.model is None:
            from deepstrata.run.artifact import load_model

            with torch.random.fork_rng(devices=[]):  # building it draws initial weights; keep the student's RNG stream
                model, _ = load_model(self.run_dir)
            self.model = model.eval().requires_grad_(False)
        if next(self.model.parameters()).device != device:
            self.model.to(device)
        return self.model


class DistillationTask(ClassificationTask):
    """Classification whose training loss also pulls the student towards a teacher run's soft targets.

    With `hint_weight` set, FitNets hints too: `example` is one input batch, (1, ...), that sizes
    the regressor, and `seed` draws its initial weights.
    """

    def __init__(
        self,
        model: nn.Module,
        loss: nn.Module,
        metrics: dict[str, Any],
        *,
        teacher: str,
        temperature: float = 4.0,
        alpha: float = 0.9,
        hint_weight: float | None = None,
        hint_layer: int | None = None,
        guided_layer: int | None = None,
        example: torch.Tensor | None = None,
        seed: int = 0,
    ):
        super().__init__(model, loss, metrics)
        check_settings(teacher, temperature, alpha)
        self.teacher_dir, self.temperature, self.alpha = str(teacher), float(temperature), float(alpha)
        self._teacher = FrozenTeacher(self.teacher_dir)
        self.hint_weight = hint_weight
        self.regressor: nn.Module | None = None
        if hint_weight is None:
            if hint_layer is not None or guided_layer is not None:
                raise UserError("distillation: hint_layer and guided_layer choose FitNets layers; also give hint_weight (e.g. 0.1) to turn hints on")
            return
        if hint_weight < 0:
            raise UserError(f"distillation: hint_weight (the FitNets hint term's weight) must be >= 0, got {hint_weight}")
        if example is None:
            raise UserError("distillation: FitNets hints need an example input to size the regressor; build the task from a recipe")
        teacher_shapes = stage_shapes(self.teacher(example.device), example, "teacher")
        student_shapes = stage_shapes(model, example, "student")
        self.hint_layer, self.guided_layer = choose_stages(teacher_shapes, student_shapes, hint_layer, guided_layer)
        self.regressor = build_regressor(student_shapes[self.guided_layer], teacher_shapes[self.hint_layer], seed=seed)

    def training_only_modules(self) -> list[nn.Module]:
        """What the optimizer trains beside the model and the run does not save: the FitNets regressor."""
        return [self.regressor] if self.regressor is not None else []

    @classmethod
    def for_inference(cls, model: nn.Module, spec: Any) -> ClassificationTask:
        """A distilled model predicts like any classifier: no teacher is needed after training."""
        return ClassificationTask(model, nn.Identity(), {})

    def teacher(self, device: torch.device) -> nn.Module:
        """The teacher's model, loaded once, frozen, in eval mode, on `device`."""
        return self._teacher.on(device)

    def training_step(self, batch: Any) -> StepOutput:
        x, y = batch
        if self.regressor is not None:
            return self._fitnets_step(x, y)
        logits = self.model(x)
        with torch.no_grad():
            teacher_logits = self.teacher(x.device)(x)
        loss = self._kd_loss(logits, teacher_logits, y)
        out = StepOutput(loss=loss, batch_size=x.shape[0], preds=logits, target=hard_labels(y))
        self.update_metrics("train", out)
        return out

    def _fitnets_step(self, x: torch.Tensor, y: torch.Tensor) -> StepOutput:
        """KD loss + hint_weight * mean((u_h - r(v_g))^2), the stage outputs caught during the usual forward passes."""
        teacher = self.teacher(x.device)
        with catch_stage(self.model, self.guided_layer) as guided:
            logits = self.model(x)
        with torch.no_grad(), catch_stage(teacher, self.hint_layer) as hint:
            teacher_logits = teacher(x)
        loss = self._kd_loss(logits, teacher_logits, y) + self.hint_weight * hint_loss(guided["out"], hint["out"], self.regressor)
        out = StepOutput(loss=loss, batch_size=x.shape[0], preds=logits, target=hard_labels(y))
        self.update_metrics("train", out)
        return out

    def _kd_loss(self, logits: torch.Tensor, teacher_logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """alpha * T^2 * KL + (1 - alpha) * loss on the labels, for (N, K) logits."""
        if teacher_logits.shape != logits.shape:
            raise UserError(
                f"distillation: the teacher gives outputs of shape {tuple(teacher_logits.shape)}, the student "
                f"{tuple(logits.shape)}; a teacher must predict the same classes from the same inputs"
            )
        soft = soft_target_loss(logits, teacher_logits, self.temperature)
        hard = self.loss_fn(logits, y)
        return self.alpha * soft + (1.0 - self.alpha) * hard


def check_settings(teacher: str, temperature: float, alpha: float) -> None:
    """Refuse a temperature <= 0, an alpha outside [0, 1] and a teacher that is no finished run."""
    if temperature <= 0:
        raise UserError(f"distillation: temperature must be positive, got {temperature}")
    if not 0.0 <= alpha <= 1.0:
        raise UserError(f"distillation: alpha (the soft-target weight) must be in [0, 1], got {alpha}")
    if not (Path(teacher) / "model.json").is_file():
        raise UserError(f"distillation: teacher '{teacher}' is not a finished run directory (no model.json); train the teacher first")


@register_task("distillation")
def distillation(
    *,
    model: Any,
    loss: Any,
    metrics: dict[str, Any],
    data: DataBundle,
    teacher: str,
    temperature: float = 4.0,
    alpha: float = 0.9,
    hint_weight: float | None = None,
    hint_layer: int | None = None,
    guided_layer: int | None = None,
) -> DistillationTask:
    """Knowledge distillation (Hinton et al. 2015): alpha * T^2 * KL(teacher || student at T) + (1 - alpha) * loss on the labels.

    teacher: a finished classification run on the same data; temperature: T; alpha: the soft-target weight.
    hint_weight: turns FitNets hints on (Romero et al. 2015) with this weight on the L2 hint loss;
    hint_layer / guided_layer: the teacher's and the student's feature stage (default: the teacher's
    middle stage, and the student stage of the same spatial size nearest its middle).
    """
    example = default_collate([data.train[0]])[0] if hint_weight is not None and data.train is not None and len(data.train) else None
    return DistillationTask(
        model, loss, metrics, teacher=teacher, temperature=temperature, alpha=alpha, hint_weight=hint_weight,
        hint_layer=hint_layer, guided_layer=guided_layer, example=example, seed=int(data.split.get("seed", 0)),
    )


# The registered distillation tasks; `strata distill` takes the one whose kind is the teacher's.
DISTILLATION_TASKS = ("distillation", "lm_distillation")


def distillation_task_for(teacher: str | Path) -> str:
    """The name of the distillation task for a teacher run: `distillation` for a classifier, `lm_distillation` for a language model."""
    from deepstrata.run.run import Run
    from deepstrata.tasks.base import task_class

    kind = Run.open(teacher).task_class.kind
    for name in DISTILLATION_TASKS:
        if task_class(name).kind == kind:
            return name
    kinds = ", ".join(task_class(name).kind for name in DISTILLATION_TASKS)
    raise UserError(f"strata distill: the teacher '{teacher}' is a {kind} run; distillation is implemented for {kinds} runs")
