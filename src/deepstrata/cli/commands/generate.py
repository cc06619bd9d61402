"""`strata generate`: continue a prompt with a trained language model run."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command()
    def generate(
        run_dir: Path = typer.Argument(..., help="A finished language-model run (e.g. runs/char_gpt/<timestamp>)."),
        prompt_arg: str | None = typer.Argument(None, metavar="[PROMPT]", help="Text to continue (or give it with --prompt)."),
        prompt: str = typer.Option("", "--prompt", "-p", help="Text to continue (empty: start from <bos>)."),
        max_new_tokens: int = typer.Option(200, "--max-new-tokens", "-n", min=1, help="How many tokens to generate."),
        temperature: float = typer.Option(0.8, "--temperature", "-t", min=0.0, help="Softmax temperature; 0 is greedy."),
        top_p: float | None = typer.Option(None, "--top-p", help="Nucleus sampling: keep the smallest set of tokens reaching this probability."),
        top_k: int | None = typer.Option(None, "--top-k", help="Keep only the k most likely tokens."),
        seed: int = typer.Option(0, "--seed", help="Sampling seed (same seed, same text)."),
        no_cache: bool = typer.Option(False, "--no-cache", help="Re-run the whole context every step instead of using the KV cache."),
    ) -> None:
        """Generate text from a run's model.json + model.safetensors and its saved tokenizer.json (no pickle)."""
        from deepstrata.data.tokenizers import FILENAME, load_tokenizer
        from deepstrata.errors import UserError
        from deepstrata.run.run import Run
        from deepstrata.tasks.language_model import LanguageModelTask, generate_text

        if prompt_arg is not None and prompt:
            raise UserError("give the prompt once: as the argument after RUN_DIR or with --prompt, not both")
        prompt = prompt_arg if prompt_arg is not None else prompt
        run = Run.open(run_dir)
        if not issubclass(run.task_class, LanguageModelTask):
            raise UserError(f"run '{run.path}' is not a language model ({run.architecture}); `strata generate` continues text with a language_modeling run")
        tokenizer_file = run.path / run.spec.get("input_spec", {}).get("tokenizer", FILENAME)
        if not tokenizer_file.is_file():
            raise UserError(f"run '{run.path}' holds no {tokenizer_file.name}; `strata generate` needs a language-model run that saved its tokenizer")
        tokenizer = load_tokenizer(tokenizer_file)
        text = generate_text(
            run.model(), tokenizer, prompt, max_new_tokens=max_new_tokens, temperature=temperature,
            top_k=top_k, top_p=top_p, seed=seed, use_cache=not no_cache,
        )
        typer.echo(prompt + text)
