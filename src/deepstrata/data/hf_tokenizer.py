"""A pretrained model's own tokenizer, read from its local Hugging Face directory (tokenizer.json).

Problem: a pretrained encoder's embedding table is indexed by the ids of the tokenizer it was
pretrained with; ids from a tokenizer fitted to our corpus (the toolkit's BPE) point at
unrelated vectors, and the pretraining is wasted.
Idea: load the tokenizer.json shipped beside the weights with Hugging Face `tokenizers` (plain
JSON, no code runs) and encode texts as the model saw them in pretraining: `[CLS] text [SEP]`,
truncated to `max_len` and right-padded with the tokenizer's own `[PAD]` id, exactly what
`transformers.AutoTokenizer(texts, truncation=True, max_length=max_len, padding="max_length")`
returns. (WordPiece: Wu et al. 2016, "Google's Neural Machine Translation System"; the input
format: Devlin et al. 2019, "BERT".)
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import torch

from deepstrata.data.hf_directory import hf_model_dir
from deepstrata.data.tokenizers import Tokenizer, _ints
from deepstrata.errors import DataError

SPECIAL_ROLES = ("pad_token", "unk_token", "cls_token", "sep_token", "mask_token")


class PretrainedTokenizer(Tokenizer):
    """The tokenizer of a local Hugging Face model directory; its special ids are the model's own."""

    kind = "pretrained"

    def __init__(self, tokenizer: Any, *, specials: dict[str, str], source: str = ""):
        from tokenizers import Tokenizer as HFTokenizer

        self._tok = tokenizer  # as read: to_dict() saves the file's own settings
        self._plain = HFTokenizer.from_str(tokenizer.to_str())  # a copy without the file's padding/truncation
        self._plain.no_padding()
        self._plain.no_truncation()
        self.source = source
        self.specials = dict(specials)
        ids = {}
        for role in ("pad_token", "cls_token", "sep_token", "unk_token"):
            token = self.specials.get(role)
            if token is None or tokenizer.token_to_id(token) is None:
                raise DataError(f"tokenizer '{source}' has no {role} ({token!r} is not in its vocabulary); a BERT-style tokenizer is expected")
            ids[role] = int(tokenizer.token_to_id(token))
        self.pad_id, self.cls_id, self.sep_id, self.unk_id = ids["pad_token"], ids["cls_token"], ids["sep_token"], ids["unk_token"]
        mask = self.specials.get("mask_token")
        self.mask_id = tokenizer.token_to_id(mask) if mask else None
        self.special_ids = tuple(sorted({i for i in (self.pad_id, self.cls_id, self.sep_id, self.unk_id, self.mask_id) if i is not None}))

    @classmethod
    def from_dir(cls, path: str) -> PretrainedTokenizer:
        """Read `path`/tokenizer.json (and special_tokens_map.json); `path` may name an installed model package."""
        from tokenizers import Tokenizer as HFTokenizer

        directory = hf_model_dir(path)
        file = directory / "tokenizer.json"
        if not file.is_file():
            raise DataError(f"'{directory}' has no tokenizer.json; give the directory of a Hugging Face model saved with a fast tokenizer")
        specials = {"pad_token": "[PAD]", "unk_token": "[UNK]", "cls_token": "[CLS]", "sep_token": "[SEP]", "mask_token": "[MASK]"}
        mapping = directory / "special_tokens_map.json"
        if mapping.is_file():
            for role, token in json.loads(mapping.read_text(encoding="utf-8")).items():
                if role in SPECIAL_ROLES:
                    specials[role] = token["content"] if isinstance(token, dict) else token
        return cls(HFTokenizer.from_file(str(file)), specials=specials, source=str(path))

    @property
    def vocab_size(self) -> int:
        return int(self._tok.get_vocab_size())

    def encode(self, text: str) -> list[int]:
        """Token ids of `text` without [CLS]/[SEP] and without truncation."""
        return list(self._plain.encode(text, add_special_tokens=False).ids)

    def decode(self, ids: Any) -> str:
        return self._plain.decode(_ints(ids), skip_special_tokens=True)

    def encode_padded(self, texts: list[str], max_len: int) -> torch.Tensor:
        """`[CLS] text [SEP]`, truncated to max_len tokens and padded with [PAD]: (N, max_len) int64."""
        from tokenizers import Tokenizer as HFTokenizer

        if max_len < 3:
            raise DataError(f"tokenizer '{self.source}': max_len must leave room for [CLS], one token and [SEP] (>= 3), got {max_len}")
        tok = HFTokenizer.from_str(self._plain.to_str())
        tok.enable_truncation(max_length=max_len)
        tok.enable_padding(length=max_len, pad_id=self.pad_id, pad_token=self.specials["pad_token"], direction="right")
        ids = [e.ids for e in tok.encode_batch(list(texts), add_special_tokens=True)]
        return torch.tensor(np.asarray(ids, dtype=np.int64).reshape(len(ids), max_len))

    def chars_per_token(self) -> np.ndarray:
        raise DataError(
            f"tokenizer '{self.source}' normalises text (lower-casing, accents), so decoded characters cannot be counted exactly; "
            "bits per character need the toolkit's lossless 'char' or 'bpe' tokenizer"
        )

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "source": self.source, "specials": self.specials, "tokenizer": json.loads(self._tok.to_str())}

