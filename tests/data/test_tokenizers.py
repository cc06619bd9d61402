"""Tokenizers: exact round trips, training-split-only vocabularies, JSON save/load, exact char counts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from deepstrata.data.tokenizers import SPECIALS, UNK, BPETokenizer, CharTokenizer, load_tokenizer, tokenizer_from_dict
from deepstrata.errors import DataError

TEXT = 'def f(x):\n    """Return x squared — naïve."""\n    return x ** 2  # ünïcode\n\tpass\n'


def test_char_round_trip_and_specials() -> None:
    tok = CharTokenizer.fit(TEXT)
    ids = tok.encode(TEXT)
    assert min(ids) >= len(SPECIALS) and tok.decode(ids) == TEXT
    assert tok.vocab_size == len(SPECIALS) + len(set(TEXT))
    np.testing.assert_array_equal(tok.encode_array(TEXT), np.array(ids))


def test_char_unknown_characters_map_to_unk() -> None:
    tok = CharTokenizer.fit("abc")
    assert tok.encode("abz€") == [tok.encode("a")[0], tok.encode("b")[0], UNK, UNK]
    assert tok.decode(tok.encode("az")) == "a\ufffd"


def test_bpe_round_trip_is_exact_on_unseen_text() -> None:
    train = [TEXT * 3, "import os\nprint(os.path.join('a', 'b'))\n" * 5]
    tok = BPETokenizer.fit(train, vocab_size=300)
    unseen = "class Ünseen:\n    def __init__(self):  # 日本語\n        self.x = {1: 'y'}\n"
    ids = tok.encode(unseen)
    assert tok.decode(ids) == unseen  # byte-level: lossless without <unk>
    assert tok.vocab_size <= 300 and all(tok._tok.token_to_id(s) == i for i, s in enumerate(SPECIALS))
    # chars_per_token sums to the exact character count, even where a token splits a UTF-8 character
    assert int(tok.chars_per_token()[ids].sum()) == len(unseen)


def test_bpe_merges_frequent_pairs() -> None:
    tok = BPETokenizer.fit(["return self.value\n" * 200], vocab_size=300)
    assert len(tok.encode("return self.value\n")) < len("return self.value\n") / 2


@pytest.mark.parametrize("kind", ["char", "bpe"])
def test_save_load_round_trip(kind: str, tmp_path: Path) -> None:
    tok = CharTokenizer.fit(TEXT) if kind == "char" else BPETokenizer.fit([TEXT * 4], vocab_size=280)
    path = tok.save(tmp_path / "tokenizer.json")
    json.loads(path.read_text(encoding="utf-8"))  # plain JSON, nothing executable
    again = load_tokenizer(tmp_path)
    assert again.encode(TEXT) == tok.encode(TEXT) and again.decode(again.encode(TEXT)) == TEXT
    assert again.vocab_size == tok.vocab_size


def test_bad_tokenizer_files_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no tokenizer"):
        load_tokenizer(tmp_path)
    with pytest.raises(DataError, match="unknown tokenizer kind"):
        tokenizer_from_dict({"kind": "wordpiece"})
    with pytest.raises(DataError, match="vocab_size"):
        BPETokenizer.fit(["abc"], vocab_size=100)


def test_load_from_a_directory_of_runs_takes_the_newest(tmp_path: Path) -> None:
    old = CharTokenizer.fit("abc")
    new = CharTokenizer.fit("xyz")
    for name, tok in (("20260101-000000", old), ("20260102-000000", new)):
        (tmp_path / name).mkdir()
        tok.save(tmp_path / name / "tokenizer.json")
    assert load_tokenizer(tmp_path).to_dict() == new.to_dict()  # `runs/<recipe>` -> its newest run
    assert load_tokenizer(tmp_path / "20260101-000000").to_dict() == old.to_dict()
