"""The standard-library corpus: deterministic, split by file, tokenizer fitted on training text only."""

from __future__ import annotations

import pytest
import torch

from deepstrata.data import python_text as pt
from deepstrata.data.tokenizers import CLS, PAD, tokenizer_from_dict

SMALL = {"max_train_chars": 150_000, "max_test_chars": 30_000}


def test_file_list_is_sorted_and_excludes_test_suites() -> None:
    files = pt.corpus_files()
    assert list(files) == sorted(files) and len(files) > 100
    assert not any(part in pt.EXCLUDED_DIRS for f in files for part in f.split("/")[:-1])
    assert "json/decoder.py" in files


def test_held_out_files_never_overlap_training_files() -> None:
    corpus = pt.load_corpus(heldout_fraction=0.1, **SMALL)
    assert corpus.train_files and corpus.test_files
    assert not set(corpus.train_files) & set(corpus.test_files)
    assert all(pt.is_heldout(f, 0.1) for f in corpus.test_files)
    assert not any(pt.is_heldout(f, 0.1) for f in corpus.train_files)
    assert len(corpus.train_text) == SMALL["max_train_chars"]


def test_dataset_is_deterministic_windows_shifted_by_one() -> None:
    a = pt.python_text(block_size=64, **SMALL)
    b = pt.python_text(block_size=64, **SMALL)
    assert torch.equal(a.x, b.x) and torch.equal(a.test_x, b.test_x)
    assert a.task == "language_modeling" and a.x.dtype == torch.int64 and a.x.shape[1] == 64
    torch.testing.assert_close(a.x[:, 1:], a.y[:, :-1])  # y is x shifted by one token
    torch.testing.assert_close(a.x[1:, 0], a.y[:-1, -1])  # windows are contiguous
    assert a.model_defaults == {"vocab_size": a.input_spec["vocab_size"]}


def test_tokenizer_is_fitted_on_training_text_only() -> None:
    data = pt.python_text(**SMALL)
    tok = tokenizer_from_dict(__import__("json").loads(data.artifacts["tokenizer.json"]))
    corpus = pt.load_corpus(heldout_fraction=0.1, **SMALL)
    assert set(tok.chars) == set(corpus.train_text)
    assert tok.decode(data.x[0]) == corpus.train_text[:128]


def test_bpe_corpus_round_trips() -> None:
    data = pt.python_text(tokenizer="bpe", bpe_vocab_size=400, block_size=32, **SMALL)
    tok = tokenizer_from_dict(__import__("json").loads(data.artifacts["tokenizer.json"]))
    corpus = pt.load_corpus(heldout_fraction=0.1, **SMALL)
    assert data.input_spec["vocab_size"] == tok.vocab_size <= 400
    assert corpus.train_text.startswith(tok.decode(data.x[:4].flatten()))


def test_function_classification_splits_by_file() -> None:
    data = pt.python_functions(tokenizer="char", max_len=400, **SMALL)
    assert data.class_names == list(pt.PACKAGES) and data.x.shape[1] == 400
    assert (data.x[:, 0] == CLS).all() and (data.x == PAD).any()
    assert set(data.y.tolist()) == set(range(8)) and set(data.test_y.tolist()) == set(range(8))
    funcs = pt.package_functions(pt.PACKAGES)
    test_sources = {s for rel, _, s in funcs if pt.is_heldout(rel, 0.1)}
    train_sources = {s for rel, _, s in funcs if not pt.is_heldout(rel, 0.1)}
    assert len(data.test_y) == sum(1 for rel, _, _ in funcs if pt.is_heldout(rel, 0.1))
    assert test_sources and train_sources


def test_label_fraction_keeps_every_class() -> None:
    full = pt.python_functions(tokenizer="char", max_len=16, **SMALL)
    tenth = pt.python_functions(tokenizer="char", max_len=16, label_fraction=0.1, **SMALL)
    assert abs(len(tenth.y) - 0.1 * len(full.y)) <= 1
    assert set(tenth.y.tolist()) == set(range(8)) and torch.equal(tenth.test_y, full.test_y)


def test_bad_arguments_are_clear() -> None:
    with pytest.raises(Exception, match="not standard-library packages"):
        pt.python_functions(packages=["numpy"], **SMALL)
    with pytest.raises(Exception, match="heldout_fraction"):
        pt.python_text(heldout_fraction=0.0, **SMALL)


def test_bpe_fitting_is_the_same_in_every_process() -> None:
    # python_functions refits the tokenizer from the corpus settings unless tokenizer_run is given;
    # that only matches the pretraining run's ids if fitting is deterministic across processes
    # (hash seeds differ per process; the Rust trainer has its own hash maps).
    import hashlib
    import json
    import subprocess
    import sys

    code = (
        "import hashlib, json; from deepstrata.data import python_text as pt; "
        f"t = pt.build_tokenizer('bpe', heldout_fraction=0.1, bpe_vocab_size=400, **{SMALL!r}); "
        "print(hashlib.sha1(json.dumps(t.to_dict(), sort_keys=True).encode()).hexdigest())"
    )
    here = pt.build_tokenizer("bpe", heldout_fraction=0.1, bpe_vocab_size=400, **SMALL)
    expected = hashlib.sha1(json.dumps(here.to_dict(), sort_keys=True).encode()).hexdigest()
    env = {**__import__("os").environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == expected


def test_functions_reuse_a_pretraining_runs_tokenizer(tmp_path) -> None:
    from deepstrata.data.tokenizers import BPETokenizer

    other = BPETokenizer.fit(["def f(x):\n    return x\n" * 50], vocab_size=300)  # not what the corpus would fit
    run = tmp_path / "text_bert_pretrain" / "20260101-000000"
    run.mkdir(parents=True)
    other.save(run / "tokenizer.json")
    data = pt.python_functions(max_len=32, tokenizer_run=str(run.parent), **SMALL)
    assert __import__("json").loads(data.artifacts["tokenizer.json"]) == other.to_dict()
    assert data.input_spec["vocab_size"] == other.vocab_size and int(data.x.max()) < other.vocab_size
    first = next(src for rel, _, src in pt.package_functions(pt.PACKAGES) if not pt.is_heldout(rel, 0.1))
    assert torch.equal(data.x[0], pt.encode_padded(other, [first], 32)[0])
    with pytest.raises(Exception, match="holds a 'bpe' tokenizer"):
        pt.python_functions(tokenizer="char", tokenizer_run=str(run), **SMALL)
