"""Checksums: every weights and checkpoint file carries a SHA-256 sidecar that every read checks."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import torch
from tests.run.run_helpers import copy_run

from deepstrata.cli.main import main as cli_main
from deepstrata.errors import UserError
from deepstrata.run import integrity
from deepstrata.run.integrity import sidecar, verify, write_checked
from deepstrata.run.run import Run
from deepstrata.training.checkpoint import load_checkpoint


def flip_inside_tensor(path: Path, tensor: torch.Tensor) -> None:
    """Flip one bit in the middle of `tensor`'s bytes where the file stores them."""
    data = bytearray(path.read_bytes())
    raw = tensor.detach().contiguous().numpy().tobytes()
    at = data.find(raw)
    assert at >= 0, "the tensor's bytes are stored as they are"
    data[at + len(raw) // 2] ^= 0x10
    path.write_bytes(bytes(data))


def test_the_sidecar_is_a_sha256sum_line(tmp_path: Path) -> None:
    target = write_checked(tmp_path / "w.bin", lambda p: p.write_bytes(b"weights"))
    line = sidecar(target).read_text()
    assert line == f"{integrity.file_sha256(target)}  w.bin\n"
    assert verify(target) is True
    if shutil.which("sha256sum"):
        done = subprocess.run(["sha256sum", "-c", "w.bin.sha256"], cwd=tmp_path, capture_output=True, text=True)
        assert done.returncode == 0 and "w.bin: OK" in done.stdout


def test_a_run_writes_a_sidecar_beside_every_weights_and_checkpoint_file(trained_run: Path) -> None:
    for rel in ("model.safetensors", "checkpoints/last.pt", "checkpoints/best.safetensors"):
        assert verify(trained_run / rel) is True, rel


# ---- finding: a bit flipped inside a tensor of checkpoints/last.pt went unnoticed by --resume
def test_a_bit_flipped_inside_last_pt_is_refused(trained_run: Path, tmp_path: Path) -> None:
    run = copy_run(trained_run, tmp_path / "run")
    last = run / "checkpoints" / "last.pt"
    original = load_checkpoint(last)["model"]
    name = next(k for k, v in original.items() if v.numel() >= 16)
    flip_inside_tensor(last, original[name])
    # torch's zip reader skips CRCs: without the sidecar this loads, silently, as other weights
    silently = torch.load(last, map_location="cpu", weights_only=True)["model"][name]
    assert not torch.equal(silently, original[name])
    with pytest.raises(UserError, match=r"last\.pt does not match its SHA-256 \(last\.pt\.sha256\): the file was changed or damaged; restore it"):
        load_checkpoint(last)


def test_resume_from_a_damaged_checkpoint_exits_2_with_one_line(trained_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = copy_run(trained_run, tmp_path / "run")
    last = run / "checkpoints" / "last.pt"
    flip_inside_tensor(last, next(v for v in load_checkpoint(last)["model"].values() if v.numel() >= 16))
    assert cli_main(["train", "--resume", str(run)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"{last} does not match its SHA-256" in err


def test_a_bit_flipped_inside_model_safetensors_is_refused(trained_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = copy_run(trained_run, tmp_path / "run")
    weights = run / "model.safetensors"
    flip_inside_tensor(weights, Run.open(trained_run).model().state_dict()["features.0.weight"])
    expected = f"{weights} does not match its SHA-256 (model.safetensors.sha256): the file was changed or damaged; restore it or train again"
    with pytest.raises(UserError) as err:
        Run.open(run).model()
    assert str(err.value) == expected
    assert cli_main(["predict", str(run), "unused.npy"]) == 2
    assert capsys.readouterr().err.strip() == f"error: {expected}"


def test_files_without_a_sidecar_load_unverified(trained_run: Path, tmp_path: Path) -> None:
    """Runs written before checksums have no sidecars; they keep loading (nothing to check them against)."""
    run = copy_run(trained_run, tmp_path / "run")
    for path in run.rglob("*.sha256"):
        path.unlink()
    assert verify(run / "model.safetensors") is False
    reference = Run.open(trained_run).model().state_dict()
    loaded = Run.open(run).model().state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in reference.items())
    assert load_checkpoint(run / "checkpoints" / "last.pt")["format"] == 1


@pytest.mark.parametrize(
    "content",
    [b"", b"not a checksum\n", b"0" * 63 + b"  w.bin\n", b"0" * 64 + b"  other.bin\n", b"0" * 64 + b"  w.bin\n" * 2, b"\xff" * 80, b"0" * 64 + b"  w.bin" + b" " * 5000],
    ids=["empty", "words", "short-digest", "other-name", "two-lines", "binary", "huge"],
)
def test_a_damaged_sidecar_is_an_error_never_a_pass(tmp_path: Path, content: bytes) -> None:
    target = write_checked(tmp_path / "w.bin", lambda p: p.write_bytes(b"weights"))
    sidecar(target).write_bytes(content)
    with pytest.raises(UserError, match=r"w\.bin\.sha256: not a checksum line for w\.bin .* delete it to load w\.bin unverified") as err:
        verify(target)
    assert "\n" not in str(err.value)


def test_a_mismatching_digest_names_the_file_and_the_remedy(tmp_path: Path) -> None:
    target = write_checked(tmp_path / "w.bin", lambda p: p.write_bytes(b"weights"))
    target.write_bytes(b"weightz")
    with pytest.raises(UserError, match=r"w\.bin does not match its SHA-256 \(w\.bin\.sha256\).*; do this"):
        verify(target, remedy="do this")


def test_a_kill_between_the_file_and_its_sidecar_leaves_an_unverified_file_not_a_damaged_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = write_checked(tmp_path / "w.bin", lambda p: p.write_bytes(b"old"))

    def killed(*args: object, **kwargs: object) -> None:
        raise SystemExit("killed before the sidecar was written")

    monkeypatch.setattr(integrity, "atomic_write_text", killed)
    with pytest.raises(SystemExit):
        write_checked(target, lambda p: p.write_bytes(b"new"))
    assert target.read_bytes() == b"new" and not sidecar(target).exists()
    assert verify(target) is False  # loads unverified, like a run from before checksums


def test_checkpoints_that_leave_the_top_k_take_their_sidecars_with_them(tmp_path: Path) -> None:
    from tests.training.engine_helpers import tiny

    from deepstrata.training.callbacks.base import Callback
    from deepstrata.training.callbacks.checkpoint import Checkpoint
    from deepstrata.training.trainer import Trainer

    class Scripted(Callback):
        adds_validation_metrics = ("val/score",)

        def on_validation_end(self, trainer) -> None:
            trainer.state.val_metrics["val/score"] = [0.2, 0.9, 0.4, 0.95][trainer.state.epoch]

    task, loader, val = tiny(0)
    ckpt = Checkpoint(tmp_path, monitor="val/score", mode="max", save_top_k=2)
    Trainer(max_epochs=4, callbacks=[Scripted(), ckpt]).fit(task, loader, val, optimizer=torch.optim.SGD(task.parameters(), lr=0.5))
    files = sorted(p.name for p in tmp_path.iterdir())
    weights = [n for n in files if not n.endswith(".sha256")]
    assert sorted(n for n in files if n.endswith(".sha256")) == sorted(f"{n}.sha256" for n in weights)
    assert len([n for n in weights if n.startswith("best-")]) == 2
    assert all(verify(tmp_path / n) for n in weights)
