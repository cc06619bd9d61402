"""Causal language modelling: predict every next token, report bits per character against a bigram.

Problem: a language model's loss in nats per token cannot be compared across tokenizers, and
a number without a baseline says nothing about whether the model learned more than letter
statistics. Idea: train on next-token cross-entropy over all (N, T) positions, convert the
held-out loss to bits per character (exact for any tokenizer through each token's character
count; Shannon 1951 measured English this way), and report beside it an add-alpha smoothed
bigram model fitted on the same training windows, with alpha chosen on the validation windows.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from deepstrata.data.tokenizers import FILENAME, Tokenizer, tokenizer_from_dict
from deepstrata.errors import UserError
from deepstrata.registry import register_task
from deepstrata.tasks.base import SPLITS, Quality, StepOutput, Task

ALPHAS = (1.0, 0.3, 0.1, 0.03, 0.01, 0.003)


def split_tensors(dataset: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """(x, y) of a split: a Subset of a TensorDataset (fast path) or any dataset of pairs."""
    base = getattr(dataset, "dataset", None)
    tensors = getattr(base, "tensors", None)
    if tensors is not None:
        idx = torch.as_tensor(dataset.indices, dtype=torch.long)
        return tensors[0][idx], tensors[1][idx]
    if getattr(dataset, "tensors", None) is not None:
        return dataset.tensors[0], dataset.tensors[1]
    xs, ys = zip(*(dataset[i] for i in range(len(dataset))))
    return torch.stack(xs), torch.stack(ys)


class BigramModel:
    """P(next | current) from counts with add-alpha smoothing; `fit` on (x, y) token windows."""

    def __init__(self, vocab_size: int):
        self.vocab_size = vocab_size

    def fit(self, x: torch.Tensor, y: torch.Tensor, *, val: tuple[torch.Tensor, torch.Tensor] | None = None) -> BigramModel:
        v = self.vocab_size
        pairs = x.flatten() * v + y.flatten()
        self.counts_ = torch.bincount(pairs, minlength=v * v).view(v, v).double()
        self.alpha_ = 1.0
        if val is not None and val[0].numel():
            self.alpha_ = min(ALPHAS, key=lambda a: self._nats(val[0], val[1], a).item())
        self.log_probs_ = self._table(self.alpha_)
        return self

    def _table(self, alpha: float) -> torch.Tensor:
        smoothed = self.counts_ + alpha
        return (smoothed / smoothed.sum(dim=1, keepdim=True)).log()  # (V, V)

    def _nats(self, x: torch.Tensor, y: torch.Tensor, alpha: float) -> torch.Tensor:
        return -self._table(alpha)[x.flatten(), y.flatten()].mean()

    def nats(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """(N, T) windows -> (N, T) negative log-likelihood of each next token."""
        return -self.log_probs_[x.cpu(), y.cpu()]


class LanguageModelTask(Task):
    """Batches of (x, y), y = x shifted by one, both (N, T); the model returns (N, T, V) logits."""

    kind = "language_modeling"
    default_loss = "cross_entropy"
    default_metrics = ()
    quality = Quality("bits_per_char", higher_is_better=False, baselines=("bigram_bits_per_char",))
    reads = "none"
    predict_hint = "this run is a language model: it continues text; use `strata generate RUN_DIR \"def main(\"`"

    def __init__(self, model: Any, loss: Any, metrics: dict[str, Any], *, data: Any = None):
        super().__init__(model, loss, metrics)
        self.tokenizer: Tokenizer | None = None
        self.bigram: BigramModel | None = None
        chars = None
        if data is not None and FILENAME in getattr(data, "artifacts", {}):
            self.tokenizer = tokenizer_from_dict(json.loads(data.artifacts[FILENAME]))
            chars = torch.as_tensor(self.tokenizer.chars_per_token(), dtype=torch.float64)
            train_x, train_y = split_tensors(data.train)
            val = split_tensors(data.val) if data.val is not None else None
            self.bigram = BigramModel(self.tokenizer.vocab_size).fit(train_x, train_y, val=val)
        self.register_buffer("chars_per_token", chars, persistent=False)
        self._sums: dict[str, dict[str, float]] = {s: {} for s in SPLITS}
        self._last: dict[str, float] = {}

    def shared_step(self, batch: Any) -> StepOutput:
        x, y = batch
        logits = self.model(x)  # (N, T, V)
        if logits.dim() != 3 or logits.shape[:2] != y.shape:
            raise UserError(
                f"language_modeling needs a model returning (N, T, V) logits for (N, T) targets; got {tuple(logits.shape)} "
                f"for targets {tuple(y.shape)} (use a causal LM such as 'gpt')"
            )
        flat_logits, flat_y = logits.flatten(0, 1), y.flatten()
        loss = self.loss_fn(flat_logits, flat_y)
        with torch.no_grad():
            nll = F.cross_entropy(flat_logits.float(), flat_y, reduction="none")
            self._last = {
                "nats": float(nll.sum()),
                "tokens": float(flat_y.numel()),
                "correct": float((flat_logits.argmax(-1) == flat_y).sum()),
                "chars": float(self.chars_per_token[flat_y].sum()) if self.chars_per_token is not None else float(flat_y.numel()),
            }
        return StepOutput(loss=loss, batch_size=x.shape[0])

    @torch.no_grad()
    def evaluation_step(self, batch: Any, split: str) -> StepOutput:
        out = super().evaluation_step(batch, split)
        if self.bigram is not None:
            x, y = batch
            self._sums[split]["bigram_nats"] = self._sums[split].get("bigram_nats", 0.0) + float(self.bigram.nats(x, y).sum())
        return out

    def update_metrics(self, split: str, out: StepOutput) -> None:
        super().update_metrics(split, out)
        sums = self._sums[split]
        for k, v in self._last.items():
            sums[k] = sums.get(k, 0.0) + v

    def compute_metrics(self, split: str) -> dict[str, float]:
        result = super().compute_metrics(split)
        s, self._sums[split] = self._sums[split], {}
        if s.get("tokens"):
            result[f"{split}/bits_per_token"] = s["nats"] / s["tokens"] / math.log(2)
            result[f"{split}/bits_per_char"] = s["nats"] / s["chars"] / math.log(2)
            result[f"{split}/next_token_accuracy"] = s["correct"] / s["tokens"]
            if "bigram_nats" in s:
                result[f"{split}/bigram_bits_per_char"] = s["bigram_nats"] / s["chars"] / math.log(2)
                result[f"{split}/bits_per_char_vs_bigram"] = s["nats"] / s["bigram_nats"]
        return result

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> dict[str, Any]:
        return {"logits": self.model(x)}

    def sample_text(
        self, prompt: str, *, max_new_tokens: int, temperature: float = 1.0, top_k: int | None = None,
        top_p: float | None = None, seed: int = 0,
    ) -> str:
        """The prompt continued by the model (the prompt itself not repeated)."""
        return generate_text(self.model, self.tokenizer, prompt, max_new_tokens=max_new_tokens, temperature=temperature, top_k=top_k, top_p=top_p, seed=seed)


def generate_text(
    model: Any, tokenizer: Tokenizer | None, prompt: str, *, max_new_tokens: int, temperature: float = 1.0,
    top_k: int | None = None, top_p: float | None = None, seed: int = 0, use_cache: bool = True,
) -> str:
    """Encode `prompt`, sample `max_new_tokens` tokens from a causal LM with `generate`, decode the new part."""
    if tokenizer is None:
        raise UserError("this run has no tokenizer; language-model runs save tokenizer.json next to the model")
    if not hasattr(model, "generate"):
        raise UserError(f"model {type(model).__name__} cannot generate text; use a causal language model such as 'gpt'")
    ids = tokenizer.encode(prompt) or [tokenizer.bos_id]
    device = next(model.parameters()).device
    idx = torch.tensor([ids], dtype=torch.long, device=device)
    out = model.generate(
        idx, max_new_tokens, temperature=temperature, top_k=top_k, top_p=top_p, use_cache=use_cache,
        generator=torch.Generator().manual_seed(seed),
    )
    return tokenizer.decode(np.asarray(out[0, len(ids) :].cpu()))


@register_task("language_modeling")
def language_modeling(*, model: Any, loss: Any, metrics: dict[str, Any], data: Any = None) -> LanguageModelTask:
    """Causal language modelling: next-token cross-entropy; bits per char vs a bigram fitted on train."""
    return LanguageModelTask(model, loss, metrics, data=data)
