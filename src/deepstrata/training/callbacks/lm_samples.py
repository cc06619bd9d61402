"""Text samples from a trained language model, saved with the run for its report.

Problem: bits per character say how well a model predicts text, not what its text looks like;
a reader should see whether it learned indentation, keywords and names. Idea: after the test,
continue a few fixed prompts with the trained model (temperature and nucleus sampling from a
fixed seed) and write them to `samples.json`, which the report's "Text samples" section shows.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from deepstrata.errors import UserError
from deepstrata.registry import register_callback
from deepstrata.run.atomic import atomic_write_text
from deepstrata.training.callbacks.base import Callback

SAMPLES_FILE = "samples.json"
DEFAULT_PROMPTS = ("def ", "class ", "import os\n", "    for i in range(")


class LMSamples(Callback):
    """Writes {"settings": ..., "samples": [{"prompt", "text"}, ...]} to <run_dir>/samples.json."""

    def __init__(self, path: str | Path, *, prompts: list[str], max_new_tokens: int, temperature: float, top_p: float | None, seed: int):
        self.path = Path(path)
        self.prompts, self.max_new_tokens, self.temperature, self.top_p, self.seed = prompts, max_new_tokens, temperature, top_p, seed

    def setup(self, trainer: Any) -> None:
        if not hasattr(trainer.task, "sample_text") or getattr(trainer.task, "tokenizer", None) is None:
            raise UserError("callback lm_samples needs task: language_modeling on tokenized text (e.g. data python_text); remove it from callbacks")

    def on_test_end(self, trainer: Any) -> None:
        samples = [
            {"prompt": p, "text": trainer.task.sample_text(p, max_new_tokens=self.max_new_tokens, temperature=self.temperature, top_p=self.top_p, seed=self.seed + i)}
            for i, p in enumerate(self.prompts)
        ]
        settings = {"max_new_tokens": self.max_new_tokens, "temperature": self.temperature, "top_p": self.top_p, "seed": self.seed}
        atomic_write_text(self.path, json.dumps({"settings": settings, "samples": samples}, indent=2, ensure_ascii=False) + "\n")


@register_callback("lm_samples")
def lm_samples(
    *,
    run_dir: str,
    prompts: list[str] = list(DEFAULT_PROMPTS),  # noqa: B006 - copied, never mutated
    max_new_tokens: int = 300,
    temperature: float = 0.8,
    top_p: float | None = 0.95,
    seed: int = 0,
) -> LMSamples:
    """After the test, continue fixed prompts with the language model; samples.json feeds the report."""
    if max_new_tokens < 1:
        raise UserError(f"lm_samples: max_new_tokens must be at least 1, got {max_new_tokens}")
    return LMSamples(Path(run_dir) / SAMPLES_FILE, prompts=list(prompts), max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, seed=seed)
