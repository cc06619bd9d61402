"""Tokenizers: text to integer ids and back, saved as JSON with the run.

Problem: a language model sees integers, and a model trained with one text-to-id mapping is
useless with another, so the mapping must be learned from the training text only and shipped
with the weights. Idea: a character tokenizer (one id per character, the simplest lossless
code) and byte-level byte-pair encoding (Sennrich et al. 2016, "Neural Machine Translation of
Rare Words with Subword Units"; byte-level as in GPT-2, Radford et al. 2019), which merges
frequent byte pairs into tokens, trained with Hugging Face `tokenizers`; both round-trip text
exactly and serialise to plain JSON (no pickle).

Both reserve the same special ids: 0 <pad>, 1 <unk>, 2 <bos>, 3 <eos>, 4 <mask>, 5 <cls>.
"""

from __future__ import annotations

import json
from collections import Counter
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from deepstrata.errors import DataError

SPECIALS = ("<pad>", "<unk>", "<bos>", "<eos>", "<mask>", "<cls>")
PAD, UNK, BOS, EOS, MASK, CLS = range(len(SPECIALS))
FILENAME = "tokenizer.json"


class Tokenizer:
    """Common interface: encode/decode, special ids, JSON round trip, characters per token."""

    kind = "base"
    pad_id, unk_id, bos_id, eos_id, mask_id, cls_id = PAD, UNK, BOS, EOS, MASK, CLS
    special_ids = tuple(range(len(SPECIALS)))

    @property
    def vocab_size(self) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def encode(self, text: str) -> list[int]:  # pragma: no cover - abstract
        raise NotImplementedError

    def decode(self, ids: Any) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    def encode_array(self, text: str) -> np.ndarray:
        """`encode` as an int64 array (fast paths override this)."""
        return np.asarray(self.encode(text), dtype=np.int64)

    def chars_per_token(self) -> np.ndarray:
        """(V,) number of characters each token adds to decoded text (0 for specials).

        Summing it over a sequence of token ids gives the exact character count of its
        decoding, so a loss in nats per token converts exactly to bits per character.
        """
        raise NotImplementedError  # pragma: no cover - abstract

    def to_dict(self) -> dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), ensure_ascii=False), encoding="utf-8")
        return path


class CharTokenizer(Tokenizer):
    """One id per character seen in the training text (count >= min_count); others -> <unk>."""

    kind = "char"

    def __init__(self, chars: list[str]):
        if len(set(chars)) != len(chars) or any(len(c) != 1 for c in chars):
            raise DataError("CharTokenizer needs distinct single characters")
        self.chars = list(chars)
        self._index = {c: i + len(SPECIALS) for i, c in enumerate(self.chars)}
        # Code point -> id lookup table for the fast numpy path (code points above the table -> unk).
        top = max((ord(c) for c in self.chars), default=0) + 1
        self._table = np.full(top, UNK, dtype=np.int64)
        for c, i in self._index.items():
            self._table[ord(c)] = i

    @classmethod
    def fit(cls, text: str, *, min_count: int = 1) -> CharTokenizer:
        """Learn the alphabet of `text` (characters seen at least `min_count` times), sorted."""
        counts = Counter(text)
        return cls(sorted(c for c, n in counts.items() if n >= min_count))

    @property
    def vocab_size(self) -> int:
        return len(SPECIALS) + len(self.chars)

    def encode(self, text: str) -> list[int]:
        return self.encode_array(text).tolist()

    def encode_array(self, text: str) -> np.ndarray:
        codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.int64)
        out = np.full(codes.shape, UNK, dtype=np.int64)
        known = codes < len(self._table)
        out[known] = self._table[codes[known]]
        return out

    def decode(self, ids: Any) -> str:
        """Specials are dropped, except <unk>, which decodes to U+FFFD."""
        n = len(SPECIALS)
        return "".join(self.chars[i - n] if i >= n else "\ufffd" if i == UNK else "" for i in _ints(ids))

    def chars_per_token(self) -> np.ndarray:
        lengths = np.ones(self.vocab_size, dtype=np.int64)
        lengths[: len(SPECIALS)] = 0
        lengths[UNK] = 1  # an unknown character is still one character of text
        return lengths

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "specials": list(SPECIALS), "chars": self.chars}


class BPETokenizer(Tokenizer):
    """Byte-level BPE from Hugging Face `tokenizers`: lossless on any text, no <unk> needed."""

    kind = "bpe"

    def __init__(self, tokenizer: Any):
        self._tok = tokenizer
        for i, s in enumerate(SPECIALS):
            if tokenizer.token_to_id(s) != i:
                raise DataError(f"BPE tokenizer must map {s} to id {i}; it was not built by BPETokenizer.fit")

    @classmethod
    def fit(cls, texts: list[str], *, vocab_size: int = 1024, min_frequency: int = 2) -> BPETokenizer:
        """Train byte-level BPE on `texts` (the training split only) up to `vocab_size` ids."""
        from tokenizers import Tokenizer as HFTokenizer
        from tokenizers import decoders, models, pre_tokenizers, trainers

        if vocab_size < len(SPECIALS) + 256:
            raise DataError(f"bpe vocab_size must be at least {len(SPECIALS) + 256} (specials + 256 bytes), got {vocab_size}")
        tok = HFTokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            min_frequency=min_frequency,
            special_tokens=list(SPECIALS),
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
        tok.train_from_iterator(texts, trainer=trainer)
        return cls(tok)

    @property
    def vocab_size(self) -> int:
        return int(self._tok.get_vocab_size())

    def encode(self, text: str) -> list[int]:
        return list(self._tok.encode(text, add_special_tokens=False).ids)

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [list(e.ids) for e in self._tok.encode_batch(texts, add_special_tokens=False)]

    def decode(self, ids: Any) -> str:
        return self._tok.decode(_ints(ids), skip_special_tokens=True)

    def chars_per_token(self) -> np.ndarray:
        # A byte-level token is a string of byte symbols; it starts one character per byte
        # that is not a UTF-8 continuation byte (0b10xxxxxx), so sums over a text are exact.
        to_byte = {ch: b for b, ch in _bytes_to_unicode().items()}
        lengths = np.zeros(self.vocab_size, dtype=np.int64)
        for token, i in self._tok.get_vocab().items():
            if i < len(SPECIALS):
                continue
            lengths[i] = sum(1 for ch in token if not (0x80 <= to_byte.get(ch, 0) <= 0xBF))
        return lengths

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "tokenizer": json.loads(self._tok.to_str())}


def tokenizer_from_dict(data: dict[str, Any]) -> Tokenizer:
    """Rebuild a tokenizer from `to_dict()` output (plain JSON data)."""
    kind = data.get("kind")
    if kind == "char":
        if list(data.get("specials", [])) != list(SPECIALS):
            raise DataError(f"char tokenizer JSON has specials {data.get('specials')}, expected {list(SPECIALS)}")
        return CharTokenizer(list(data["chars"]))
    if kind == "bpe":
        from tokenizers import Tokenizer as HFTokenizer

        return BPETokenizer(HFTokenizer.from_str(json.dumps(data["tokenizer"])))
    raise DataError(f"unknown tokenizer kind {kind!r}; expected 'char' or 'bpe'")


def load_tokenizer(path: str | Path) -> Tokenizer:
    """Read a tokenizer JSON file: the file, a run directory holding it, or a directory of runs
    (`runs/<recipe>`: the newest run that holds one; run directories are named by start time)."""
    path = Path(path)
    if path.is_dir():
        runs = sorted(path.glob(f"*/{FILENAME}"))  # by name = by start time, as models.bert.resolve_run
        path = path / FILENAME if (path / FILENAME).is_file() or not runs else runs[-1]
    if not path.is_file():
        raise DataError(f"no tokenizer at '{path}'; language-model runs save it as {FILENAME} in the run directory")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise DataError(f"{path}: not valid JSON ({err})") from None
    return tokenizer_from_dict(data)


def _ints(ids: Any) -> list[int]:
    if hasattr(ids, "tolist"):
        ids = ids.tolist()
    return [int(i) for i in ids]


@cache
def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte -> printable character map, which byte-level BPE uses for its symbols."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}
