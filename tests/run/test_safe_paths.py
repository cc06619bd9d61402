"""`run/safe_paths.inside`: a name that would leave its folder is refused, however it is spelt."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from deepstrata.errors import UserError
from deepstrata.run.run import Run
from deepstrata.run.safe_paths import inside
from deepstrata.tools.base import Analysis, write_analysis


@pytest.mark.parametrize("name", ["model.onnx", "model.onnx.data", "weights/part_0.bin", "./a.bin", "sub/../b.bin"])
def test_names_inside_the_folder_are_kept(tmp_path: Path, name: str) -> None:
    target = inside(tmp_path, name)
    assert tmp_path.resolve() in target.parents


@pytest.mark.parametrize("name", ["../x.data", "../../etc/passwd", "/etc/passwd", "sub/../../x", "", ".", "C:evil.data", "\\\\host\\share"])
def test_names_that_leave_the_folder_are_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(UserError):
        inside(tmp_path, name)


def test_a_symbolic_link_out_of_the_folder_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    folder = tmp_path / "folder"
    folder.mkdir()
    os.symlink(outside, folder / "link")
    with pytest.raises(UserError, match="outside"):
        inside(folder, "link/model.onnx.data")


def test_an_analysis_cannot_write_a_file_outside_its_result_folder(tmp_path: Path) -> None:
    run_dir = tmp_path / "runs" / "r" / "20260101-000000"
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text("name: r\n")
    source = tmp_path / "made.bin"
    source.write_bytes(b"x")
    with pytest.raises(UserError, match="outside"):
        write_analysis(Run(run_dir), "probe", {}, Analysis(metrics={}, files={"../../escaped.bin": source}))
    assert not (run_dir / "tools" / "escaped.bin").exists() and source.exists()
    assert not (run_dir / "tools" / "probe").exists()  # refused before a result folder was made
