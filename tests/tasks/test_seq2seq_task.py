"""Seq2seq task: canonical outputs, exact match, decoding fallbacks; a short dates run learns and predicts from text."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from deepstrata.metrics.sequence import ExactMatch, TokenAccuracy
from deepstrata.models.seq2seq import gru_attention_seq2seq
from deepstrata.tasks.seq2seq import Seq2SeqTask, greedy_decode


class _NoShortcuts(nn.Module):
    """Hides the model's own decoders so the task falls back to re-running the forward on the prefix."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.inner = model

    def forward(self, src: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        return self.inner(src, tgt_in)


def test_prefix_fallback_decodes_like_the_models_own_greedy() -> None:
    torch.manual_seed(0)
    model = gru_attention_seq2seq(vocab_size=12, embed_dim=8, hidden_size=16, max_target_len=7).eval()
    src = torch.randint(3, 12, (5, 6), generator=torch.Generator().manual_seed(0))
    own, attention = greedy_decode(model, src, max_len=6)
    fallback, none = greedy_decode(_NoShortcuts(model), src, max_len=6)
    assert attention is not None and none is None
    assert torch.equal(fallback[:, : own.shape[1]], own)


def test_canonical_form_cuts_after_the_first_eos() -> None:
    task = Seq2SeqTask(nn.Linear(1, 1), nn.CrossEntropyLoss(), {})
    out = task.canonical(torch.tensor([[5, 6, 2, 7, 8], [5, 2, 0, 0, 0]]), 4)
    assert out.tolist() == [[5, 6, 2, 0], [5, 2, 0, 0]]


def test_exact_match_and_token_accuracy() -> None:
    target = torch.tensor([[5, 6, 2, 0], [5, 7, 2, 0]])
    preds = torch.tensor([[5, 6, 2, 0], [5, 8, 2, 0]])
    em, ta = ExactMatch(), TokenAccuracy(pad_id=0)
    em.update(preds, target)
    ta.update(preds, target)
    assert float(em.compute()) == 0.5
    assert float(ta.compute()) == pytest.approx(5 / 6)  # padding positions do not count
    with pytest.raises(ValueError, match=r"same shape \(N, T\)"):
        em.update(preds, target[:, :3])


@pytest.mark.e2e
def test_short_dates_run_learns_reports_attention_and_predicts_text(tmp_path: Path) -> None:
    """3,000 dates for 3 epochs: most characters right already (measured token accuracy 0.75)."""
    from deepstrata import api

    result = api.train(
        "recipes/dates_gru_attention.yaml",
        ["data.num_train=3000", "data.num_test=200", "trainer.max_epochs=3", "scheduler.warmup_steps=10", "trainer.progress=off", f"output_dir={tmp_path}"],
    )
    m = result.metrics
    assert m["test/token_accuracy"] > 0.6
    assert {"test/exact_match", "test/exact_match_beam4"} <= set(m)
    examples = json.loads((result.run_dir / "seq2seq_examples.json").read_text())
    first = examples[0]
    assert len(first["attention"]) == len(first["prediction_tokens"]) and len(first["attention"][0]) == len(first["source_tokens"])
    assert "Decoded test examples and attention" in (result.run_dir / "report.html").read_text()
    assert json.loads((result.run_dir / "vocab.json").read_text())["tokens"][:3] == ["<pad>", "<bos>", "<eos>"]
    outputs = api.load(result.run_dir).predict_files(["3 March 1987", "Tue, Mar 3 87"])
    assert [o["input"] for o in outputs] == ["3 March 1987", "Tue, Mar 3 87"]
    assert all(isinstance(o["output"], str) and o["output"] for o in outputs)
