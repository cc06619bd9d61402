"""Masked-language-model pretraining: hide 15% of the tokens, predict them from both sides.

Problem: an encoder that sees the whole sequence cannot be trained to predict the next token,
yet pretraining needs a self-supervised target that unlabelled text provides for free. Idea:
corrupt each batch with BERT's 80/10/10 rule (fresh masks every training step, fixed masks for
validation and test so the numbers are comparable), compute cross-entropy only at the
selected positions, and report masked-token accuracy beside the accuracy of always guessing
the most frequent training token (Devlin et al. 2019).

A subword piece is easy to restore from the other pieces of its word ("assert" + "Equal"), which
teaches spelling rather than meaning. `whole_word=True` selects whole identifiers, every piece of
a word together (BERT's whole-word masking; span masking in SpanBERT, Joshi et al. 2020), and
`mask_rate` raises the share of hidden tokens (40% works well, Wettig et al. 2023). On the
standard-library text the rate mattered most; whole words on top fine-tuned best (docs/transformers.md).
A recipe asks for both with `task: {name: masked_lm, mask_rate: 0.4, whole_word: true}`.
"""

from __future__ import annotations

import inspect
import json
from typing import Any

import torch

from deepstrata.data.tokenizers import FILENAME, MASK, SPECIALS, Tokenizer, tokenizer_from_dict
from deepstrata.errors import UserError
from deepstrata.registry import register_task
from deepstrata.tasks.base import SPLITS, Quality, StepOutput, Task
from deepstrata.tasks.language_model import split_tensors
from deepstrata.transforms.text import IGNORE, mlm_mask

EVAL_SEED = 1234


def identifier_edges(tok: Tokenizer) -> tuple[torch.Tensor, torch.Tensor]:
    """(V,) bools: does token i start / end with an identifier character (letter, digit, `_`)?

    A token continues the word of the token before it when it starts with an identifier
    character and that token ends with one; a leading space (byte-level BPE's `Ġ`) or any
    punctuation begins a new word.
    """
    starts = torch.zeros(tok.vocab_size, dtype=torch.bool)
    ends = torch.zeros(tok.vocab_size, dtype=torch.bool)
    for i in range(len(SPECIALS), tok.vocab_size):
        text = tok.decode([i])
        if text:
            starts[i] = text[0].isalnum() or text[0] == "_"
            ends[i] = text[-1].isalnum() or text[-1] == "_"
    return starts, ends


def whole_word_mask(
    tokens: torch.Tensor,
    *,
    starts_ident: torch.Tensor,
    ends_ident: torch.Tensor,
    vocab_size: int,
    generator: torch.Generator,
    mask_prob: float = 0.15,
) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT's 80/10/10 rule on whole words: a word is selected with probability `mask_prob` and
    then all of its pieces are. tokens (N, T); returns (inputs, labels) shaped like tokens."""
    if tokens.dim() != 2 or tokens.dtype != torch.int64:
        raise UserError(f"whole_word_mask expected int64 token ids of shape (N, T), got {tokens.dtype} {tuple(tokens.shape)}")
    if not 0.0 <= mask_prob <= 1.0:
        raise UserError(f"masked_lm: mask_rate must be in [0, 1], got {mask_prob}")
    eligible = tokens >= len(SPECIALS)
    continues = torch.zeros_like(eligible)
    continues[:, 1:] = ends_ident[tokens[:, :-1]] & starts_ident[tokens[:, 1:]] & eligible[:, :-1] & eligible[:, 1:]
    pos = torch.arange(tokens.shape[1]).expand_as(tokens)
    word_start = torch.where(continues, 0, pos).cummax(dim=1).values  # (N, T): where each token's word begins
    u = torch.rand(tokens.shape, generator=generator)
    selected = eligible & (u.gather(1, word_start) < mask_prob)  # one draw per word
    labels = torch.where(selected, tokens, torch.full_like(tokens, IGNORE))
    action = torch.rand(tokens.shape, generator=generator)
    random_ids = torch.randint(len(SPECIALS), vocab_size, tokens.shape, generator=generator)
    inputs = torch.where(selected & (action < 0.8), torch.full_like(tokens, MASK), tokens)
    inputs = torch.where(selected & (action >= 0.8) & (action < 0.9), random_ids, inputs)
    return inputs, labels


class MaskedLMTask(Task):
    """Batches of (x, _) with x (N, T) token ids; the model returns (N, T, V) logits."""

    kind = "masked_lm"
    default_loss = "cross_entropy"
    default_metrics = ()
    quality = Quality("masked_accuracy", baselines=("unigram_accuracy",))
    reads = "none"
    predict_hint = "this run is a masked language model (pretraining); fine-tune it for a task with `strata finetune RUN_DIR RECIPE`"

    def __init__(
        self,
        model: Any,
        loss: Any,
        metrics: dict[str, Any],
        *,
        data: Any = None,
        mask_prob: float = 0.15,
        whole_word: bool = False,
        seed: int = 0,
    ):
        super().__init__(model, loss, metrics)
        spec = getattr(data, "input_spec", {}) or {}
        self.vocab_size = int(spec.get("vocab_size") or getattr(model, "encoder", model).vocab_size)
        self.mask_prob = mask_prob
        self.edges: tuple[torch.Tensor, torch.Tensor] | None = None
        if whole_word:
            text = (getattr(data, "artifacts", None) or {}).get(FILENAME)
            if text is None:
                raise UserError(f"masked_lm: whole_word masking needs the data's tokenizer ({FILENAME}) to find word boundaries; use a token dataset such as python_text or set whole_word to false")
            self.edges = identifier_edges(tokenizer_from_dict(json.loads(text)))
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
        if self.edges is None:
            inputs, labels = mlm_mask(x.cpu(), vocab_size=self.vocab_size, generator=self._gen, mask_prob=self.mask_prob)
        else:
            starts, ends = self.edges
            inputs, labels = whole_word_mask(x.cpu(), starts_ident=starts, ends_ident=ends, vocab_size=self.vocab_size, generator=self._gen, mask_prob=self.mask_prob)
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
def masked_lm(*, model: Any, loss: Any, metrics: dict[str, Any], data: Any = None, mask_rate: float = 0.15, whole_word: bool = False) -> MaskedLMTask:
    """BERT pretraining: 80/10/10 masking, loss at masked positions, accuracy vs a unigram guess."""
    return MaskedLMTask(model, loss, metrics, data=data, mask_prob=mask_rate, whole_word=whole_word)
