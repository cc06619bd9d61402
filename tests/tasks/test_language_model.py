"""Language modelling: exact bits-per-character bookkeeping, the bigram baseline, and a short char_gpt run."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import nn
from torch.utils.data import Subset, TensorDataset

from deepstrata.data.tokenizers import FILENAME, CharTokenizer
from deepstrata.losses.cross_entropy import CrossEntropy
from deepstrata.tasks.language_model import BigramModel, LanguageModelTask

REPO = Path(__file__).resolve().parents[2]


def test_bigram_counts_and_smoothing() -> None:
    x = torch.tensor([[0, 1, 0, 1]])
    y = torch.tensor([[1, 0, 1, 2]])
    bigram = BigramModel(3).fit(x, y)  # no validation windows: Laplace (alpha = 1)
    probs = bigram.log_probs_.exp()
    # after 0: (2 x "1") + 1 over 2 + 3 -> P(1|0) = 3/5; after 1: one "0", one "2" -> P(0|1) = 2/5
    assert probs[0, 1].item() == pytest.approx(3 / 5) and probs[1, 0].item() == pytest.approx(2 / 5)
    torch.testing.assert_close(probs.sum(1), torch.ones(3, dtype=torch.float64))


def test_bigram_alpha_is_chosen_on_validation() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 5, (50, 20), generator=g)
    y = (x + 1) % 5  # deterministic successor: little smoothing is best
    assert BigramModel(5).fit(x, y, val=(x[:5], y[:5])).alpha_ == min(BigramModel(5).fit(x, y).alpha_, 0.003)


class BigramAsModel(nn.Module):
    """A 'model' whose logits are a fixed bigram table's log-probabilities."""

    def __init__(self, log_probs: torch.Tensor):
        super().__init__()
        self.register_buffer("table", log_probs.float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.table[x]  # (N, T, V)


def test_a_model_equal_to_the_bigram_scores_exactly_the_bigram() -> None:
    text = "def f(x):\n    return x + 1\n" * 20
    tok = CharTokenizer.fit(text)
    ids = torch.tensor(tok.encode(text))
    x, y = ids[:-1][: 16 * 33].view(33, 16), ids[1:][: 16 * 33].view(33, 16)
    full = TensorDataset(x, y)
    data = SimpleNamespace(
        artifacts={FILENAME: json.dumps(tok.to_dict())}, train=Subset(full, list(range(25))), val=Subset(full, list(range(25, 29)))
    )
    probe = LanguageModelTask(nn.Identity(), CrossEntropy(), {}, data=data)
    task = LanguageModelTask(BigramAsModel(probe.bigram.log_probs_), CrossEntropy(), {}, data=data)
    task.eval()
    task.evaluation_step((x[29:], y[29:]), "test")
    m = task.compute_metrics("test")
    assert m["test/bits_per_char"] == pytest.approx(m["test/bigram_bits_per_char"], rel=1e-5)
    assert m["test/bits_per_char_vs_bigram"] == pytest.approx(1.0, rel=1e-5)
    assert m["test/bits_per_char"] == pytest.approx(m["test/loss"] / math.log(2), rel=1e-5)  # char tokens: 1 char each


def test_wrong_model_output_is_a_clear_error() -> None:
    task = LanguageModelTask(nn.Linear(4, 3), CrossEntropy(), {})
    with pytest.raises(Exception, match=r"\(N, T, V\) logits"):
        task.shared_step((torch.rand(2, 4), torch.zeros(2, 4, dtype=torch.long)))


SHORT = [
    "trainer.max_steps=50", "trainer.progress=off", "data.max_train_chars=60000", "data.max_test_chars=10000",
    "data.block_size=32", "model.max_len=32", "model.dim=64", "model.depth=2", "model.num_heads=2",
    "scheduler.warmup_steps=10", "callbacks.0.max_new_tokens=20",
]


@pytest.mark.e2e
def test_char_gpt_short_run_generate_and_evaluate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from deepstrata.api import evaluate, train
    from deepstrata.cli.main import main

    result = train(REPO / "recipes" / "char_gpt.yaml", [*SHORT, f"output_dir={tmp_path}"])
    m = result.metrics
    uniform = math.log2(json.loads((result.run_dir / "model.json").read_text())["input_spec"]["vocab_size"])
    # Honest floors for 50 steps of a 2-layer, 64-wide model (measured 3.85 bits; the bigram 3.76).
    assert m["test/bits_per_char"] < uniform - 1.5
    assert 3.0 < m["test/bigram_bits_per_char"] < 4.5
    assert m["test/bits_per_char"] < 1.15 * m["test/bigram_bits_per_char"]  # measured 1.02x after 50 steps
    for name in (FILENAME, "samples.json", "model.safetensors", "report.html"):
        assert (result.run_dir / name).is_file()
    assert "Text samples" in (result.run_dir / "report.html").read_text(encoding="utf-8")
    assert main(["generate", str(result.run_dir), "--prompt", "def ", "--max-new-tokens", "12", "--temperature", "0"]) == 0
    by_option = capsys.readouterr().out
    # The prompt also works as a plain argument, as a new user first types it.
    assert main(["generate", str(result.run_dir), "def ", "--max-new-tokens", "12", "--temperature", "0"]) == 0
    assert capsys.readouterr().out == by_option and by_option.startswith("def ")
    assert main(["generate", str(result.run_dir), "def ", "--prompt", "x"]) == 2  # not both
    assert main(["predict", str(result.run_dir), "x.npy"]) == 2  # a language model continues text: it says so
    assert "strata generate" in capsys.readouterr().err
    again = evaluate(result.run_dir)
    assert again.metrics["test/bits_per_char"] == pytest.approx(m["test/bits_per_char"], rel=1e-6)
