"""lm_samples: after the test, fixed prompts continued by the language model, written to samples.json."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from deepstrata.errors import UserError
from deepstrata.training.callbacks.lm_samples import DEFAULT_PROMPTS, lm_samples


class EchoTask:
    """Stands in for LanguageModelTask: `sample_text` answers with the arguments it got."""

    tokenizer = object()

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict]] = []

    def sample_text(self, prompt: str, **kwargs) -> str:
        self.calls.append((prompt, kwargs))
        return f"<{prompt.strip()}|seed={kwargs['seed']}>"


def test_each_prompt_is_continued_with_its_own_seed_and_written_with_the_settings(tmp_path: Path) -> None:
    task = EchoTask()
    trainer = SimpleNamespace(task=task)
    callback = lm_samples(run_dir=str(tmp_path), prompts=["def ", "class "], max_new_tokens=12, temperature=0.5, top_p=None, seed=10)
    callback.setup(trainer)
    callback.on_test_end(trainer)
    written = json.loads((tmp_path / "samples.json").read_text(encoding="utf-8"))
    assert written == {
        "settings": {"max_new_tokens": 12, "temperature": 0.5, "top_p": None, "seed": 10},
        "samples": [{"prompt": "def ", "text": "<def|seed=10>"}, {"prompt": "class ", "text": "<class|seed=11>"}],
    }
    assert task.calls[0][1] == {"max_new_tokens": 12, "temperature": 0.5, "top_p": None, "seed": 10}


def test_defaults_and_refusals(tmp_path: Path) -> None:
    callback = lm_samples(run_dir=str(tmp_path))
    assert callback.prompts == list(DEFAULT_PROMPTS) and callback.path == tmp_path / "samples.json"
    with pytest.raises(UserError, match="max_new_tokens must be at least 1"):
        lm_samples(run_dir=str(tmp_path), max_new_tokens=0)
    with pytest.raises(UserError, match="needs task: language_modeling"):
        callback.setup(SimpleNamespace(task=SimpleNamespace()))  # a task that cannot sample text
    no_tokenizer = EchoTask()
    no_tokenizer.tokenizer = None
    with pytest.raises(UserError, match="needs task: language_modeling"):
        callback.setup(SimpleNamespace(task=no_tokenizer))
