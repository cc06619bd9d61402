"""Precisions by name: each registered format builds on the device it is given; a misspelt name fails with the closest."""

from __future__ import annotations

import pytest
import torch

from deepstrata.errors import UserError
from deepstrata.registry import registry
from deepstrata.training.precision import BF16, Precision, build_precision

CPU = torch.device("cpu")


def test_fp32_and_bf16_build_on_cpu() -> None:
    assert type(build_precision("fp32", CPU)) is Precision
    bf16 = build_precision("bf16", CPU)
    assert isinstance(bf16, BF16) and bf16.device_type == "cpu" and not bf16.handles_overflow


def test_every_precision_is_registered() -> None:
    assert {"fp32", "bf16", "fp16"} <= set(registry("precision").names())


def test_misspelled_precision_suggests_the_closest() -> None:
    with pytest.raises(UserError, match=r"unknown precision 'fp61'; did you mean fp16\?"):
        build_precision("fp61", CPU)
