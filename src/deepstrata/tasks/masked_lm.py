"""Masked-language-model pretraining: hide 15% of the tokens, predict them from both sides.

Problem: an encoder that sees the whole sequence cannot be trained to predict the next token,
yet pretraining needs a self-supervised target that unlabelled text provides for free. Idea:
corrupt each batch with BERT's 80/10/10 rule (fresh masks every training step, fixed masks for
validation and test so the numbers are comparable), compute cross-entropy only at the
selected positions, and report masked-token accuracy beside the accuracy of always guessing
the most frequent training token (Devlin et al. 2019).
"""

from __future__ import annotations

import inspect
from typing import Any

import torch

from deepstrata.data.tokenizers import SPECIALS
from deepstrata.errors import UserError
from deepstrata.registry import register_task
from deepstrata.tasks.base import SPLITS, StepOutput, Task
from deepstrata.tasks.language_model import split_tensors
from deepstrata.transforms.text import IGNORE, mlm_mask

EVAL_SEED = 1234


class MaskedLMTask(Task):
    """Batches of (x, _) with x (N, T) token ids; the model returns (N, T, V) logits."""

    kind = "masked_lm"
    default_loss = "cross_entropy"
    default_metrics = ()

    def __init__(self, model: Any, loss: Any, metrics: dict[str, Any], *, data: Any = None, mask_prob: float = 0.15, seed: int = 0):
        super().__init__(model, loss, metrics)
        spec = getattr(data, "input_spec", {}) or {}
        self.vocab_size = int(spec.get("vocab_size") or getattr(model, "encoder", model).vocab_size)
        self.mask_prob = mask_prob
        self._selects = "select" in inspect.signature(model.forward).parameters
        self._train_gen = torch.Generator().manual_seed(seed)
        self._eval_gens = {s: torch.Generator().manual_seed(EVAL_SEED) for s in SPLITS}
        self._gen = self._train_gen
        self.most_frequent: int | None = None
        if data is not None:
            x, _ = split_tensors(data.train)
            counts = torch.bincount(x.flatten(), minlength=self.vocab_size)
            counts[: len(SPECIALS)] = 0  # special tokens are never masked, so never a target
            self.most_frequent = int(counts.argmax())
        self._sums: dict[str, dict[str, float]] = {s: {} for s in SPLITS}
        self._last: dict[str, float] = {}

    def shared_step(self, batch: Any) -> StepOutput:
        x = batch[0] if isinstance(batch, (list, tuple)) else batch
        inputs, labels = mlm_mask(x.cpu(), vocab_size=self.vocab_size, generator=self._gen, mask_prob=self.mask_prob)
        inputs, labels = inputs.to(x.device), labels.to(x.device)
        selected = labels != IGNORE
        if self._selects:  # the model computes logits at the masked positions only
            picked = self.model(inputs, select=selected)  # (M, V)
            if picked.dim() != 2 or picked.shape[0] != int(selected.sum()):
                raise UserError(f"masked_lm: model(tokens, select=mask) must return (M, V) logits, got {tuple(picked.shape)}")
        else:
            logits = self.model(inputs)  # (N, T, V)
            if logits.dim() != 3 or logits.shape[:2] != x.shape:
                raise UserError(f"masked_lm needs a model returning (N, T, V) logits for (N, T) tokens, got {tuple(logits.shape)}; use 'bert_mlm'")
            picked = logits[selected]  # (M, V)
        if not selected.any():  # a batch too small to draw a mask: nothing to learn from
            return StepOutput(loss=picked.sum() * 0.0, batch_size=x.shape[0])
        target = labels[selected]  # (M,)
        loss = self.loss_fn(picked, target)
        with torch.no_grad():
            self._last = {"masked": float(target.numel()), "correct": float((picked.argmax(-1) == target).sum())}
            if self.most_frequent is not None:
                self._last["unigram_correct"] = float((target == self.most_frequent).sum())
        return StepOutput(loss=loss, batch_size=x.shape[0])

    def training_step(self, batch: Any) -> StepOutput:
        self._gen = self._train_gen
        return super().training_step(batch)

    @torch.no_grad()
    def evaluation_step(self, batch: Any, split: str) -> StepOutput:
        self._gen = self._eval_gens[split]
        return super().evaluation_step(batch, split)

    def update_metrics(self, split: str, out: StepOutput) -> None:
        super().update_metrics(split, out)
        sums = self._sums[split]
        for k, v in self._last.items():
            sums[k] = sums.get(k, 0.0) + v
        self._last = {}

    def compute_metrics(self, split: str) -> dict[str, float]:
        result = super().compute_metrics(split)
        s, self._sums[split] = self._sums[split], {}
        if split != "train":
            self._eval_gens[split] = torch.Generator().manual_seed(EVAL_SEED)  # the same masks next time
        if s.get("masked"):
            result[f"{split}/masked_accuracy"] = s["correct"] / s["masked"]
            if "unigram_correct" in s:
                result[f"{split}/unigram_accuracy"] = s["unigram_correct"] / s["masked"]
        return result

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> dict[str, Any]:
        return {"logits": self.model(x)}


@register_task("masked_lm")
def masked_lm(*, model: Any, loss: Any, metrics: dict[str, Any], data: Any = None) -> MaskedLMTask:
    """BERT pretraining: 80/10/10 masking, loss at masked positions, accuracy vs a unigram guess."""
    return MaskedLMTask(model, loss, metrics, data=data)
