"""Date normalisation data: every format parses back to its date, test dates never appear in training."""

from __future__ import annotations

import datetime as dt

import pytest
import torch

from deepstrata.data.dates import BOS, EOS, FORMATS, MAX_SOURCE_LEN, PAD, TARGET_LEN, VOCAB, dates, decode, encode, render, sample_dates
from deepstrata.errors import DataError

# Each format read back with strptime (day/month names are English in the C locale).
PARSE = {
    0: "%d %B %Y", 1: "%d %b %Y", 2: "%B %d, %Y", 3: "%b %d, %Y", 4: "%A, %B %d, %Y", 5: "%a, %b %d %y",
    6: "%a %d %b %Y", 7: "%m/%d/%Y", 8: "%m/%d/%y", 9: "%d.%m.%Y", 10: "%d-%b-%Y", 11: "%d-%m-%Y",
    12: "%Y-%m-%d", 13: "%Y/%m/%d", 14: "%Y%m%d", 16: "%B %d %Y", 17: "%B %d, %Y", 18: "%d %b '%y",
}


@pytest.mark.parametrize("fmt", range(len(FORMATS)))
def test_every_format_is_unambiguous(fmt: int) -> None:
    """Each rendering parses back to the same date; two-digit years only within 1950-2049."""
    for date in [dt.date(1987, 3, 3), dt.date(2012, 11, 30), dt.date(1950, 1, 1), dt.date(2049, 12, 31), dt.date(1999, 7, 21)]:
        text = render(date, fmt)
        assert len(text) <= MAX_SOURCE_LEN and all(c in VOCAB for c in text)
        if fmt in PARSE:
            parsed = dt.datetime.strptime(text.title() if fmt == 16 else text, PARSE[fmt]).date()
            if FORMATS[fmt][1] and parsed.year > 2049:  # strptime's %y window is 1969-2068; ours is 1950-2049
                parsed = parsed.replace(year=parsed.year - 100)
            assert parsed == date, text
        else:  # ordinal day formats: "3rd of March 1987", "March 3rd, 1987"
            cleaned = text.replace("st", "").replace("nd", "").replace("rd", "").replace("th", "").replace(" of", "")
            assert dt.datetime.strptime(cleaned.replace("Augu", "August"), "%d %B %Y" if fmt == 15 else "%B %d, %Y").date() == date, text
    with pytest.raises(ValueError, match="two-digit year"):
        render(dt.date(1900, 1, 1), 5)


def test_examples_from_the_issue() -> None:
    d = dt.date(1987, 3, 3)
    assert render(d, 0) == "3 March 1987"
    assert render(d, 5) == "Tue, Mar 3 87"
    assert render(d, 7) == "03/03/1987"


def test_test_dates_never_occur_in_training_and_generation_is_deterministic() -> None:
    train, test = sample_dates(3000, 500, seed=7)
    assert not {iso for _, iso in train} & {iso for _, iso in test}
    assert len({iso for _, iso in test}) == 500
    assert sample_dates(3000, 500, seed=7) == (train, test)
    assert sample_dates(3000, 500, seed=8) != (train, test)
    years = [int(iso[:4]) for _, iso in train]
    assert min(years) < 1750 and max(years) > 2150  # the whole five-century range is used


def test_dataset_tensors_and_vocabulary() -> None:
    data = dates(num_train=200, num_test=50, seed=0)
    assert data.task == "seq2seq" and data.x.shape == (200, MAX_SOURCE_LEN) and data.y.shape == (200, TARGET_LEN)
    assert data.test_x.shape == (50, MAX_SOURCE_LEN)
    assert torch.all(data.y[:, 0] == BOS) and torch.all(data.y[:, -1] == EOS)
    assert data.model_defaults["vocab_size"] == len(VOCAB) == len(data.input_spec["vocab"])
    iso = decode(data.y[0].tolist())
    assert dt.date.fromisoformat(iso).isoformat() == iso
    assert "vocab.json" in data.artifacts
    assert encode("87", 4) == [VOCAB.index("8"), VOCAB.index("7"), PAD, PAD]


def test_bad_sizes_are_refused() -> None:
    with pytest.raises(DataError, match="num_train and num_test"):
        dates(num_train=0)
    with pytest.raises(DataError, match="distinct dates"):
        dates(num_train=200_000, num_test=1)
