"""Strategies by name: one process unless torchrun launched several ranks; a misspelt name fails with the closest."""

from __future__ import annotations

import pytest
import torch

from deepstrata.errors import UserError
from deepstrata.registry import registry
from deepstrata.training.strategy import SingleProcess, build_strategy, resolve_strategy

CPU = torch.device("cpu")


def test_auto_is_one_process_outside_torchrun(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert resolve_strategy("auto") == "single"
    strategy = build_strategy("auto", CPU)
    assert type(strategy) is SingleProcess and strategy.world_size == 1 and strategy.is_rank_zero


def test_auto_is_ddp_under_a_multi_rank_torchrun(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert resolve_strategy("auto") == "ddp"
    monkeypatch.setenv("WORLD_SIZE", "1")  # torchrun with one rank: nothing to synchronise
    assert resolve_strategy("auto") == "single"
    assert resolve_strategy("fsdp") == "fsdp"  # a registered name means itself


def test_every_strategy_is_a_registered_factory_of_the_device() -> None:
    assert {"single", "ddp", "fsdp"} <= set(registry("strategy").names())
    assert registry("strategy").get("single")(device=CPU).name == "single"


def test_ddp_outside_torchrun_says_how_to_launch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RANK", raising=False)
    with pytest.raises(UserError, match="torchrun --nproc_per_node"):
        build_strategy("ddp", CPU)


def test_fsdp_on_cpu_is_refused_with_the_alternative() -> None:
    with pytest.raises(UserError, match="trainer.strategy=ddp"):
        build_strategy("fsdp", CPU)


def test_misspelled_strategy_suggests_the_closest() -> None:
    with pytest.raises(UserError, match=r"unknown strategy 'fdsp'; did you mean fsdp\?"):
        build_strategy("fdsp", CPU)
