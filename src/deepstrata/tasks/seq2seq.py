"""Sequence to sequence: source token ids -> target token ids (translation, date normalisation).

Problem: per-token loss under teacher forcing says little about whether the model, left to
itself, writes the right output: one wrong token early on ruins the rest. Idea: train with
teacher forcing and cross-entropy over the target tokens (ignoring padding), but evaluate the
way the model is used: decode freely (greedy; beam search on the test split) and count exact
matches of the whole output sequence, next to per-token accuracy.

Batches are (src (N, S), tgt (N, T)) with tgt = <bos> y_1 ... y_k <eos> <pad>...; any model with
`forward(src, tgt_in) -> logits (N, T, V)` works. Decoding uses the model's `greedy_decode` /
`beam_search` when it has them, and otherwise re-runs the teacher-forced forward on the
growing prefix (correct for any causal decoder, only slower).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from types import SimpleNamespace
from typing import Any

import torch
from torch import nn

from deepstrata.errors import UserError
from deepstrata.registry import register_task
from deepstrata.tasks.base import Quality, StepOutput, Task

NUM_EXAMPLES = 6  # test inputs whose decoding and attention the report shows


class Seq2SeqTask(Task):
    kind = "seq2seq"
    default_loss = "cross_entropy"
    default_metrics = ("exact_match", "token_accuracy")
    quality = Quality("exact_match", fails_at=0.0, good_at=0.8)

    def __init__(self, model: nn.Module, loss: nn.Module, metrics: dict[str, Any], *, data: Any = None, beam_size: int = 4):
        super().__init__(model, loss, metrics)
        spec = getattr(data, "input_spec", {}) or {}
        self.pad_id = int(spec.get("pad_id", getattr(model, "pad_id", 0)))
        self.bos_id = int(spec.get("bos_id", getattr(model, "bos_id", 1)))
        self.eos_id = int(spec.get("eos_id", getattr(model, "eos_id", 2)))
        self.vocab: list[str] | None = spec.get("vocab")
        self.input_spec: dict[str, Any] = dict(spec)
        self.beam_size = beam_size
        self._beam_hits = 0
        self._beam_count = 0
        self.examples: list[dict[str, Any]] = []

    # ---------------------------------------------------------------- steps
    def shared_step(self, batch: Any) -> StepOutput:
        src, tgt = batch
        tgt_in, tgt_out = tgt[:, :-1], tgt[:, 1:]  # (N, T-1) each: read <bos> y..., predict y... <eos>
        logits = self.model(src, tgt_in)  # (N, T-1, V)
        real = tgt_out != self.pad_id
        loss = self.loss_fn(logits[real], tgt_out[real])
        return StepOutput(loss=loss, batch_size=src.shape[0], preds=None, target=tgt_out)

    def model_inputs(self, batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """(src (N, S), tgt_in (N, T-1)): one teacher-forced pass, as in training."""
        src, tgt = batch
        return src, tgt[:, :-1]

    @torch.no_grad()
    def evaluation_step(self, batch: Any, split: str) -> StepOutput:
        out = self.shared_step(batch)
        src, tgt = batch
        target = tgt[:, 1:]
        pred, attention = self.decode(src, max_len=target.shape[1])
        out.preds, out.target = self.canonical(pred, target.shape[1]), target
        self.update_metrics(split, out)
        if split == "test":
            if self.beam_size > 1 and hasattr(self.model, "beam_search"):  # only models that can search a beam report it
                beam = self.canonical(self.beam_decode(src, max_len=target.shape[1]), target.shape[1])
                self._beam_hits += int((beam == target).all(dim=1).sum())
                self._beam_count += src.shape[0]
            self._keep_examples(src, target, out.preds, attention)
        return out

    def compute_metrics(self, split: str) -> dict[str, float]:
        result = super().compute_metrics(split)
        if split == "test" and self._beam_count:
            result[f"test/exact_match_beam{self.beam_size}"] = self._beam_hits / self._beam_count
            self._beam_hits = self._beam_count = 0
        return result

    # ---------------------------------------------------------------- decoding
    def decode(self, src: torch.Tensor, *, max_len: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Greedy decoding -> (tokens (N, L), attention (N, L, S) or None)."""
        return greedy_decode(self.model, src, max_len=max_len, bos_id=self.bos_id, eos_id=self.eos_id, pad_id=self.pad_id)

    def beam_decode(self, src: torch.Tensor, *, max_len: int) -> torch.Tensor:
        """Beam search with the model's `beam_search(src, beam_size, max_len)` -> tokens (N, L)."""
        tokens = self.model.beam_search(src, beam_size=self.beam_size, max_len=max_len)
        return tokens[0] if isinstance(tokens, tuple) else tokens

    def canonical(self, tokens: torch.Tensor, length: int) -> torch.Tensor:
        """Cut after the first <eos>, pad (or truncate) to `length`, so equal outputs compare equal."""
        n = tokens.shape[0]
        out = torch.full((n, length), self.pad_id, dtype=torch.long, device=tokens.device)
        keep = min(length, tokens.shape[1])
        out[:, :keep] = tokens[:, :keep]
        is_eos = out == self.eos_id
        after = (is_eos.cumsum(dim=1) - is_eos.long()) > 0  # strictly after the first <eos>
        return out.masked_fill(after, self.pad_id)

    # ---------------------------------------------------------------- report material
    def _keep_examples(self, src: torch.Tensor, target: torch.Tensor, pred: torch.Tensor, attention: torch.Tensor | None) -> None:
        for i in range(src.shape[0]):
            if len(self.examples) >= NUM_EXAMPLES:
                return
            item: dict[str, Any] = {
                "source": self.detokenize(src[i]),
                "target": self.detokenize(target[i]),
                "prediction": self.detokenize(pred[i]),
                "source_tokens": self.tokens(src[i]),
                "prediction_tokens": self.tokens(pred[i], stop_at_eos=True),
            }
            if attention is not None:
                rows, cols = len(item["prediction_tokens"]), len(item["source_tokens"])
                item["attention"] = [[round(float(a), 4) for a in row[:cols]] for row in attention[i, :rows]]
            self.examples.append(item)

    def tokens(self, ids: torch.Tensor, *, stop_at_eos: bool = False) -> list[str]:
        out = []
        for t in ids.tolist():
            if t == self.pad_id:
                if stop_at_eos:
                    break
                continue
            out.append(self.vocab[t] if self.vocab and 0 <= t < len(self.vocab) else str(t))
            if stop_at_eos and t == self.eos_id:
                break
        return out

    def detokenize(self, ids: torch.Tensor) -> str:
        return "".join(t for t in self.tokens(ids, stop_at_eos=True) if not (t.startswith("<") and t.endswith(">")))

    def artifacts(self) -> dict[str, str]:
        """Files the run keeps for its report: decoded test examples with their attention weights."""
        return {"seq2seq_examples.json": json.dumps(self.examples, indent=1)} if self.examples else {}

    # ---------------------------------------------------------------- a finished run's model
    reads = "text"
    predict_hint = "this run maps text to text: pass the texts themselves, e.g. `strata predict RUN_DIR \"3 March 1987\"`"

    @classmethod
    def for_inference(cls, model: nn.Module, spec: Mapping[str, Any]) -> Seq2SeqTask:
        """The task with the run's saved vocabulary and special ids (model.json's input spec)."""
        return cls(model, nn.Identity(), {}, data=SimpleNamespace(input_spec=dict(spec.get("input_spec") or {})))

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> dict[str, Any]:
        tokens, attention = self.decode(x, max_len=getattr(self.model, "max_target_len", 32))
        return {"tokens": tokens, "attention": attention}

    @torch.no_grad()
    def predict_text(self, texts: Sequence[str]) -> list[dict[str, Any]]:
        """Character-level runs: each text -> {"output": decoded text}, with the run's vocabulary."""
        spec = self.input_spec
        if not self.vocab or spec.get("tokens") != "characters":
            raise UserError("text input needs a seq2seq run on characters; this run saved no character vocabulary")
        index = {c: i for i, c in enumerate(self.vocab)}
        length = int(spec["max_source_len"])
        rows = []
        for text in texts:
            if not 0 < len(text) <= length:
                raise UserError(f"input '{text}' has {len(text)} characters; this model reads 1 to {length}")
            ids = [index.get(c, int(spec["unk_id"])) for c in text]
            rows.append(ids + [self.pad_id] * (length - len(ids)))
        tokens, _ = greedy_decode(
            self.model, torch.tensor(rows), max_len=int(spec["max_target_len"]) - 1, bos_id=self.bos_id, eos_id=self.eos_id, pad_id=self.pad_id
        )
        return [{"output": self.detokenize(row)} for row in tokens]


@torch.no_grad()
def greedy_decode(
    model: nn.Module, src: torch.Tensor, *, max_len: int, bos_id: int = 1, eos_id: int = 2, pad_id: int = 0
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """src (N, S) -> (tokens (N, L) ending in <eos> then <pad>, attention (N, L, S) or None).

    Uses the model's own `greedy_decode(src, max_len)` or `generate(src, max_new_tokens)` when it
    has one; otherwise re-runs `model(src, prefix)` on the growing prefix and takes the last position's
    argmax, which is right for any causal decoder.
    """
    if hasattr(model, "greedy_decode"):
        out = model.greedy_decode(src, max_len=max_len)
        return out if isinstance(out, tuple) else (out, None)
    if hasattr(model, "generate"):  # e.g. transformer_seq2seq: greedy with the source encoded once
        return model.generate(src, max_new_tokens=max_len), None
    prefix = torch.full((src.shape[0], 1), bos_id, dtype=torch.long, device=src.device)
    done = torch.zeros(src.shape[0], dtype=torch.bool, device=src.device)
    for _ in range(max_len):
        token = model(src, prefix)[:, -1].argmax(dim=-1).masked_fill(done, pad_id)
        prefix = torch.cat([prefix, token[:, None]], dim=1)
        done |= token == eos_id
        if bool(done.all()):
            break
    return prefix[:, 1:], None


@register_task("seq2seq")
def seq2seq(*, model: Any, loss: Any, metrics: dict[str, Any], data: Any = None) -> Seq2SeqTask:
    """Source tokens -> target tokens: teacher-forced cross-entropy; greedy/beam exact match on evaluation."""
    return Seq2SeqTask(model, loss, metrics, data=data)
