"""Date normalisation: dates as people write them ("Tue, Mar 3 87") -> ISO 8601 ("1987-03-03").

Problem: a sequence-to-sequence model needs a task whose answer is exact and checkable, whose
inputs vary in length and wording, and that needs no download. Idea: draw calendar dates with
Python's `datetime` over five centuries, write each in one of many human formats, and ask for
the ISO form; the test dates are drawn first and never occur in training (in any format), so
the test measures generalisation to new dates, not memorisation. (The classic toy task of
attention tutorials, after Bahdanau et al. 2015's use of attention for translation.)

Conventions that make every input unambiguous (a model cannot guess what the writer meant):
numbers with "/" are month first (US, "03/04/1987" is 4 March); with "." or "-" day first
("04.03.1987"); two-digit years appear only for 1950-2049 ("87" -> 1987, "12" -> 2012).

Tokens are characters. The vocabulary is fixed (not learnt from the data), saved in the run's
model.json as `input_spec["vocab"]`, and starts with <pad>=0, <bos>=1, <eos>=2, <unk>=3.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Sequence

import numpy as np
import torch

from deepstrata.data.base import TensorData
from deepstrata.errors import DataError
from deepstrata.registry import register_dataset

SPECIALS = ["<pad>", "<bos>", "<eos>", "<unk>"]
PAD, BOS, EOS, UNK = range(4)
CHARS = sorted(set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ,./-'"))
VOCAB: list[str] = SPECIALS + CHARS
FIRST, LAST = dt.date(1700, 1, 1), dt.date(2199, 12, 31)
TWO_DIGIT_YEARS = (1950, 2049)
MAX_SOURCE_LEN = 32
TARGET_LEN = 12  # <bos> + "YYYY-MM-DD" + <eos>

MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


# Each format writes one date; the flag says whether it uses a two-digit year.
Format = tuple[Callable[[dt.date], str], bool]
FORMATS: list[Format] = [
    (lambda d: f"{d.day} {MONTHS[d.month - 1]} {d.year}", False),  # 3 March 1987
    (lambda d: f"{d.day:02d} {MONTHS[d.month - 1][:3]} {d.year}", False),  # 03 Mar 1987
    (lambda d: f"{MONTHS[d.month - 1]} {d.day}, {d.year}", False),  # March 3, 1987
    (lambda d: f"{MONTHS[d.month - 1][:3]} {d.day}, {d.year}", False),  # Mar 3, 1987
    (lambda d: f"{DAYS[d.weekday()]}, {MONTHS[d.month - 1]} {d.day}, {d.year}", False),  # Tuesday, March 3, 1987
    (lambda d: f"{DAYS[d.weekday()][:3]}, {MONTHS[d.month - 1][:3]} {d.day} {d.year % 100:02d}", True),  # Tue, Mar 3 87
    (lambda d: f"{DAYS[d.weekday()][:3]} {d.day} {MONTHS[d.month - 1][:3]} {d.year}", False),  # Tue 3 Mar 1987
    (lambda d: f"{d.month:02d}/{d.day:02d}/{d.year}", False),  # 03/03/1987 (month first)
    (lambda d: f"{d.month}/{d.day}/{d.year % 100:02d}", True),  # 3/3/87
    (lambda d: f"{d.day:02d}.{d.month:02d}.{d.year}", False),  # 03.03.1987 (day first)
    (lambda d: f"{d.day}-{MONTHS[d.month - 1][:3]}-{d.year}", False),  # 3-Mar-1987
    (lambda d: f"{d.day:02d}-{d.month:02d}-{d.year}", False),  # 03-03-1987 (day first)
    (lambda d: d.isoformat(), False),  # 1987-03-03
    (lambda d: f"{d.year}/{d.month:02d}/{d.day:02d}", False),  # 1987/03/03
    (lambda d: f"{d.year}{d.month:02d}{d.day:02d}", False),  # 19870303
    (lambda d: f"{_ordinal(d.day)} of {MONTHS[d.month - 1]} {d.year}", False),  # 3rd of March 1987
    (lambda d: f"{MONTHS[d.month - 1].lower()} {d.day} {d.year}", False),  # march 3 1987
    (lambda d: f"{MONTHS[d.month - 1].upper()} {d.day}, {d.year}", False),  # MARCH 3, 1987
    (lambda d: f"{d.day} {MONTHS[d.month - 1][:3].lower()} '{d.year % 100:02d}", True),  # 3 mar '87
    (lambda d: f"{MONTHS[d.month - 1]} {_ordinal(d.day)}, {d.year}", False),  # March 3rd, 1987
]


def render(date: dt.date, fmt: int) -> str:
    """`date` written in format number `fmt` (an index into FORMATS)."""
    write, two_digit = FORMATS[fmt]
    if two_digit and not TWO_DIGIT_YEARS[0] <= date.year <= TWO_DIGIT_YEARS[1]:
        raise ValueError(f"format {fmt} writes a two-digit year; {date} lies outside {TWO_DIGIT_YEARS}")
    return write(date)


def encode(text: str, length: int, *, wrap: bool = False) -> list[int]:
    """Characters -> ids padded with <pad> to `length`; `wrap` adds <bos> ... <eos>."""
    index = {c: i for i, c in enumerate(VOCAB)}
    ids = [index.get(c, UNK) for c in text]
    if wrap:
        ids = [BOS, *ids, EOS]
    if len(ids) > length:
        raise ValueError(f"'{text}' is {len(ids)} tokens long; at most {length} fit")
    return ids + [PAD] * (length - len(ids))


def decode(ids: Sequence[int], vocab: Sequence[str] = VOCAB) -> str:
    """Ids -> text, stopping at <eos> and skipping <pad>/<bos>."""
    out = []
    for i in ids:
        i = int(i)
        if i == EOS:
            break
        if i in (PAD, BOS):
            continue
        out.append(vocab[i] if 0 <= i < len(vocab) and i >= len(SPECIALS) else "?")
    return "".join(out)


def sample_dates(num_train: int, num_test: int, *, seed: int) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(human text, ISO) pairs; the test dates are distinct calendar days absent from training."""
    rng = np.random.default_rng(seed)
    span = LAST.toordinal() - FIRST.toordinal() + 1
    days = rng.choice(span, size=num_train + num_test, replace=False) + FIRST.toordinal()
    dates = [dt.date.fromordinal(int(d)) for d in days]
    pairs = []
    for date in dates:
        allowed = [i for i, (_, two) in enumerate(FORMATS) if not two or TWO_DIGIT_YEARS[0] <= date.year <= TWO_DIGIT_YEARS[1]]
        pairs.append((render(date, int(rng.choice(allowed))), date.isoformat()))
    return pairs[num_test:], pairs[:num_test]


def _tensors(pairs: list[tuple[str, str]]) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.tensor([encode(src, MAX_SOURCE_LEN) for src, _ in pairs], dtype=torch.int64)
    y = torch.tensor([encode(tgt, TARGET_LEN, wrap=True) for _, tgt in pairs], dtype=torch.int64)
    return x, y


@register_dataset("dates")
def dates(*, num_train: int = 20000, num_test: int = 2000, seed: int = 0) -> TensorData:
    """Human-written dates in 20 formats -> ISO 8601, character tokens; test dates never in training."""
    if num_train < 1 or num_test < 1:
        raise DataError(f"dataset 'dates': num_train and num_test must be at least 1, got {num_train} and {num_test}")
    span = LAST.toordinal() - FIRST.toordinal() + 1
    if num_train + num_test > span:
        raise DataError(f"dataset 'dates': at most {span} distinct dates exist in {FIRST}..{LAST}; asked for {num_train + num_test}")
    train, test = sample_dates(num_train, num_test, seed=seed)
    x, y = _tensors(train)
    test_x, test_y = _tensors(test)
    return TensorData(
        x=x,
        y=y,
        task="seq2seq",
        test_x=test_x,
        test_y=test_y,
        input_spec={
            "raw": "a date as text, e.g. '3 March 1987'",
            "tokens": "characters",
            "vocab": VOCAB,
            "pad_id": PAD,
            "bos_id": BOS,
            "eos_id": EOS,
            "unk_id": UNK,
            "max_source_len": MAX_SOURCE_LEN,
            "max_target_len": TARGET_LEN,
        },
        model_defaults={"vocab_size": len(VOCAB), "pad_id": PAD, "bos_id": BOS, "eos_id": EOS, "max_target_len": TARGET_LEN},
        artifacts={"vocab.json": json.dumps({"tokens": VOCAB, "pad": PAD, "bos": BOS, "eos": EOS, "unk": UNK}, ensure_ascii=False)},
        description=f"{num_train} training and {num_test} held-out dates {FIRST}..{LAST}, {len(FORMATS)} formats, seed {seed}",
    )
