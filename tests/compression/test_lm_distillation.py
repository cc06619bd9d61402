"""Distilling a language model: the loss is the per-token formula, alpha = 0 is plain training exactly,
`strata distill` picks the language-model task from the teacher, and the result is a plain GPT."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from deepstrata import api
from deepstrata.cli.main import main
from deepstrata.compression.lm_distillation import LanguageModelDistillationTask
from deepstrata.errors import UserError
from deepstrata.losses.cross_entropy import CrossEntropy
from deepstrata.models.gpt import GPT
from deepstrata.run.run import Run
from deepstrata.tasks.language_model import LanguageModelTask

REPO = Path(__file__).resolve().parents[2]
CHAR_GPT = REPO / "recipes" / "char_gpt.yaml"
CHAR_GPT_HALF = REPO / "recipes" / "char_gpt_half.yaml"  # the benchmark's student: char_gpt with half the layers
TINY = [
    "trainer.progress=off", "trainer.num_threads=1", "data.max_train_chars=20000", "data.max_test_chars=4000",
    "data.block_size=16", "model.max_len=16", "model.dim=32", "model.num_heads=2", "scheduler.warmup_steps=2",
    "trainer.log_every_n_steps=1", "callbacks=[]",
]


@pytest.fixture(scope="module")
def teacher(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("lm_teacher")
    return api.train(CHAR_GPT, [*TINY, "trainer.max_steps=20", "model.depth=2", f"output_dir={out}"]).run_dir


def student(depth: int = 1, vocab_size: int = 0) -> GPT:
    return GPT(vocab_size=vocab_size, max_len=16, dim=32, depth=depth, num_heads=2)


@pytest.mark.e2e
def test_the_loss_is_t_squared_kl_per_token_mixed_with_the_next_token_ce(teacher: Path) -> None:
    vocab = json.loads((teacher / "model.json").read_text())["kwargs"]["vocab_size"]
    torch.manual_seed(0)
    model = student(vocab_size=vocab)
    task = LanguageModelDistillationTask(model, CrossEntropy(), {}, teacher=str(teacher), temperature=2.5, alpha=0.4)
    x = torch.randint(0, vocab, (3, 16))
    y = torch.randint(0, vocab, (3, 16))
    loss = task.training_step((x, y)).loss
    with torch.no_grad():
        z_s, z_t = model(x).double(), task.teacher(x.device)(x).double()  # (N, T, V)
        p_t = F.softmax(z_t / 2.5, dim=-1)
        kl_per_token = (p_t * (p_t.log() - F.log_softmax(z_s / 2.5, dim=-1))).sum(-1)  # (N, T)
        ce_per_token = -F.log_softmax(z_s, dim=-1).gather(-1, y[..., None])[..., 0]  # (N, T)
        by_hand = 0.4 * 2.5**2 * kl_per_token.mean() + 0.6 * ce_per_token.mean()
    assert float(loss.detach()) == pytest.approx(float(by_hand), rel=1e-5)
    metrics = task.compute_metrics("train")  # the bits-per-char counters are the student's own CE
    assert metrics["train/bits_per_token"] == pytest.approx(float(ce_per_token.mean()) / torch.log(torch.tensor(2.0)).item(), rel=1e-5)
    with pytest.raises(UserError, match="same vocabulary"):
        LanguageModelDistillationTask(student(vocab_size=vocab + 3), CrossEntropy(), {}, teacher=str(teacher)).training_step(
            (torch.randint(0, vocab, (2, 16)), torch.randint(0, vocab, (2, 16)))
        )


@pytest.mark.e2e
def test_alpha_zero_is_plain_training_exactly(teacher: Path, tmp_path: Path) -> None:
    sets = [*TINY, "trainer.max_steps=6", "model.depth=1"]
    plain = api.train(CHAR_GPT, [*sets, f"output_dir={tmp_path / 'a'}"]).run_dir
    task = json.dumps({"name": "lm_distillation", "teacher": str(teacher), "temperature": 2.0, "alpha": 0.0})
    distilled = api.train(CHAR_GPT, [*sets, f"task={task}", f"output_dir={tmp_path / 'b'}"]).run_dir
    a, b = Run.open(plain).model().state_dict(), Run.open(distilled).model().state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.e2e
def test_strata_distill_on_a_language_model_writes_a_plain_language_model(teacher: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sets = [*TINY, "trainer.max_steps=6", f"output_dir={tmp_path / 'runs'}"]
    code = main(["distill", str(teacher), str(CHAR_GPT_HALF), "-T", "2", "--alpha", "0.5", "--json", *[a for s in sets for a in ("--set", s)]])
    assert code == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    run = Run.open(result["run_dir"])
    assert run.config["task"] == {"name": "lm_distillation", "teacher": str(teacher), "temperature": 2.0, "alpha": 0.5}
    assert "test/bits_per_char" in result["metrics"] and "test/bigram_bits_per_char" in result["metrics"]
    assert isinstance(run.model(), GPT) and run.model().depth == 2 and run.recipe.name == "char_gpt_half"
    assert type(run.task_class.for_inference(run.model(), run.spec)) is LanguageModelTask
    assert main(["generate", result["run_dir"], "def ", "--max-new-tokens", "5", "--temperature", "0"]) == 0
    assert capsys.readouterr().out.startswith("def ")
    # FitNets hints are for classifiers: the language-model task has no such setting
    assert main(["distill", str(teacher), str(CHAR_GPT_HALF), "--hint-weight", "0.1", *[a for s in sets for a in ("--set", s)]]) == 2
    assert "hint_weight" in capsys.readouterr().err


@pytest.mark.e2e
def test_a_teacher_with_another_tokenizer_is_refused(teacher: Path, tmp_path: Path) -> None:
    task = json.dumps({"name": "lm_distillation", "teacher": str(teacher)})
    # a different slice of the corpus gives a different character vocabulary
    with pytest.raises(UserError, match="tokenizer .* is not the student's"):
        api.train(CHAR_GPT, [*TINY, "trainer.max_steps=1", "data.max_train_chars=3000", f"task={task}", f"output_dir={tmp_path}"])
