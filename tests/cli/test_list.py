"""`strata list`: every kind under its plural, including the irregular one (loss -> losses)."""

from __future__ import annotations

import pytest

from deepstrata.cli.main import main


def test_list_names_the_losses_kind(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list"]) == 0
    kinds = [line.split()[0] for line in capsys.readouterr().out.strip().splitlines()]
    assert "losses" in kinds and "losss" not in kinds


def test_list_losses_shows_cross_entropy(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "losses"]) == 0
    captured = capsys.readouterr()
    assert "cross_entropy" in [line.split()[0] for line in captured.out.strip().splitlines()]
    assert captured.err == ""
