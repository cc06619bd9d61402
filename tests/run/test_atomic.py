"""Atomic writes: the mode an ordinary open() gives, and no temporary files left by a killed writer."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from deepstrata.run.atomic import atomic_write, atomic_write_text, is_temporary

KILLED_WRITER = r"""
import sys, time
from pathlib import Path
from deepstrata.run.atomic import atomic_write

def big(path: Path) -> None:
    with open(path, "wb") as fh:
        for _ in range(256):  # at most 256 MiB, then wait for the kill
            fh.write(bytes(1 << 20))
            fh.flush()
        time.sleep(600)

atomic_write(Path(sys.argv[1]), big)
"""
NEXT_WRITER = "import sys; from deepstrata.run.atomic import atomic_write_text; atomic_write_text(sys.argv[1], 'whole')"


def temporaries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if is_temporary(p.name))


# ---- finding: atomically written files were 0600 while the others were 0644
@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_atomic_writes_get_the_mode_a_plain_open_gives(tmp_path: Path, umask: int) -> None:
    old = os.umask(umask)
    try:
        atomic_write_text(tmp_path / "atomic.txt", "x")
        atomic_write(tmp_path / "atomic.bin", lambda p: torch.save({"x": torch.zeros(1)}, p))
        (tmp_path / "plain.txt").write_text("x")
    finally:
        os.umask(old)
    expected = 0o666 & ~umask
    assert stat.S_IMODE((tmp_path / "plain.txt").stat().st_mode) == expected
    assert stat.S_IMODE((tmp_path / "atomic.txt").stat().st_mode) == expected
    assert stat.S_IMODE((tmp_path / "atomic.bin").stat().st_mode) == expected


def test_a_run_directory_is_uniformly_readable(trained_run: Path) -> None:
    umask = 0o666 & ~stat.S_IMODE((trained_run / "metrics.jsonl").stat().st_mode)  # written with a plain open
    for path in trained_run.rglob("*"):
        if path.is_file():
            assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask, path


# ---- finding: a SIGKILL mid-write left `.<name>.<random>.tmp` behind for good
def test_the_next_write_removes_what_a_killed_writer_left(tmp_path: Path) -> None:
    target = tmp_path / "big.bin"
    child = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(target)])
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            left = [p for p in tmp_path.iterdir() if is_temporary(p.name)]
            if left and left[0].stat().st_size >= 8 << 20:
                break
            time.sleep(0.05)
        else:
            pytest.fail("the writer never got going")
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=60)
    assert child.returncode == -signal.SIGKILL
    assert not target.exists() and len(temporaries(tmp_path)) == 1  # half a file, left behind
    # A later process (a resumed run) writes the same file: the leftover goes.
    subprocess.run([sys.executable, "-c", NEXT_WRITER, str(target)], check=True, timeout=120)
    assert target.read_text() == "whole"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.bin"]


def test_only_stale_temporaries_of_the_same_file_are_removed(tmp_path: Path) -> None:
    long_ago = time.time() - 3600
    names = {
        ".x.bin.abc123de.tmp": True,  # an old temporary of x.bin: a writer that died
        ".x.bin.live0000.tmp": False,  # newer than this process: perhaps a live writer
        ".x.bin.sha256.abc123de.tmp": False,  # another file's
        ".y.bin.abc123de.tmp": False,  # another file's
        "x.bin.abc123de.tmp": False,  # not hidden: not ours
    }
    for name in names:
        (tmp_path / name).write_bytes(b"partial")
        if name != ".x.bin.live0000.tmp":
            os.utime(tmp_path / name, (long_ago, long_ago))
    (tmp_path / ".x.bin.folder00.tmp").mkdir()
    os.utime(tmp_path / ".x.bin.folder00.tmp", (long_ago, long_ago))
    atomic_write_text(tmp_path / "x.bin", "new")
    for name, removed in names.items():
        assert (tmp_path / name).exists() != removed, name
    assert (tmp_path / ".x.bin.folder00.tmp").is_dir()


def test_the_checkpoint_callback_cleans_up_after_a_killed_run(tmp_path: Path) -> None:
    from tests.training.engine_helpers import tiny

    from deepstrata.training.callbacks.checkpoint import Checkpoint
    from deepstrata.training.trainer import Trainer

    long_ago = time.time() - 3600
    for name in (".last.pt.k1ll3d00.tmp", ".best.safetensors.k1ll3d00.tmp"):
        (tmp_path / name).write_bytes(b"PK half a checkpoint")
        os.utime(tmp_path / name, (long_ago, long_ago))
    task, loader, val = tiny(0)
    Trainer(max_epochs=1, callbacks=[Checkpoint(tmp_path, monitor="val/loss")]).fit(task, loader, val, optimizer=torch.optim.SGD(task.parameters(), lr=0.1))
    assert temporaries(tmp_path) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.safetensors", "best.safetensors.sha256", "last.pt", "last.pt.sha256"]
