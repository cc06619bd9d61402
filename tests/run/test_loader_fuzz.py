"""A fuzz test of the loaders: a damaged run loads its own weights bit for bit, or says why in one line.

One real tiny run is trained once; each case copies it, damages it (truncations at random
offsets, bit flips and byte changes in every file, swapped files, absurd constructor arguments
in model.json, stale temporary files) and opens it through the four loaders every command
uses: `Run.open(d).model()`, `Run.open(d).predictor()`, `load_checkpoint(checkpoints/last.pt)`
and `Run.open(d).recipe`. Each call must either succeed with tensors bit-identical to the
original run's, or raise a `UserError` whose message is one line: no other exception, no
silent load of other weights, and memory stays bounded throughout.

Without its .sha256 sidecar a file can only be checked for its structure, so the sidecar-less
cases damage structure only (truncations, the safetensors header, swapped files): a flipped
bit inside a tensor of an unprotected file is undetectable by design, which is why sidecars
exist (`run/integrity.py`).
"""

from __future__ import annotations

import json
import random
import resource
import shutil
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch

from deepstrata.errors import UserError
from deepstrata.run.run import Run
from deepstrata.training.checkpoint import load_checkpoint

SEED = 14
WEIGHTS, SPEC, LAST = "model.safetensors", "model.json", "checkpoints/last.pt"
SIDECARS = [f"{WEIGHTS}.sha256", f"{LAST}.sha256"]
DAMAGED = [WEIGHTS, SPEC, "config.yaml", "run.json", LAST, *SIDECARS]
COPIED = [*DAMAGED, "checkpoints/best.safetensors", "checkpoints/best.safetensors.sha256"]
MAX_RSS_GROWTH_MB = 300


@dataclass
class Case:
    name: str
    damage: Callable[[Path], None]


# ---------------------------------------------------------------------------------- damage
def truncate(rel: str, at: int) -> Callable[[Path], None]:
    def damage(d: Path) -> None:
        path = d / rel
        path.write_bytes(path.read_bytes()[:at])

    return damage


def set_byte(rel: str, at: int, value: int | None = None, bit: int = 0) -> Callable[[Path], None]:
    """Replace byte `at` by `value`, or flip its `bit` when no value is given."""

    def damage(d: Path) -> None:
        path = d / rel
        data = bytearray(path.read_bytes())
        data[at] = value if value is not None else data[at] ^ (1 << bit)
        path.write_bytes(bytes(data))

    return damage


def without_sidecar(rel: str, then: Callable[[Path], None] | None = None) -> Callable[[Path], None]:
    def damage(d: Path) -> None:
        (d / f"{rel}.sha256").unlink()
        if then is not None:
            then(d)

    return damage


def swap(a: str, b: str) -> Callable[[Path], None]:
    def damage(d: Path) -> None:
        pa, pb = d / a, d / b
        data_a, data_b = pa.read_bytes(), pb.read_bytes()
        pa.write_bytes(data_b)
        pb.write_bytes(data_a)

    return damage


def copy_over(src: str, dst: str) -> Callable[[Path], None]:
    def damage(d: Path) -> None:
        shutil.copyfile(d / src, d / dst)

    return damage


def remove(rel: str) -> Callable[[Path], None]:
    def damage(d: Path) -> None:
        (d / rel).unlink()

    return damage


def replace_by_folder(rel: str) -> Callable[[Path], None]:
    def damage(d: Path) -> None:
        (d / rel).unlink()
        (d / rel).mkdir()

    return damage


def edit_spec(edit: Callable[[dict[str, Any]], Any]) -> Callable[[Path], None]:
    def damage(d: Path) -> None:
        spec = json.loads((d / SPEC).read_text())
        edit(spec)
        (d / SPEC).write_text(json.dumps(spec))

    return damage


def set_kwarg(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda spec: spec["kwargs"].__setitem__(key, value)


def write_raw_spec(text: str) -> Callable[[Path], None]:
    return lambda d: (d / SPEC).write_text(text)


def stale_temporaries(d: Path) -> None:
    for rel in (WEIGHTS, SPEC, "config.yaml", LAST):
        path = d / rel
        (path.parent / f".{path.name}.k1l13d00.tmp").write_bytes(b"half a file from a killed writer")


def absurd_spec_cases() -> list[Case]:
    """Constructor arguments and descriptions no training run writes."""
    kwargs = {
        "widths": [[4096, 64], [10**9], [10**18], [-1, 16], [0, 16], [8, 16, 32], [8], [], "abc", [8.5, 16], [True, 16], None, {"a": 1}],
        "num_classes": [10**9, 0, -5, 11, "ten", None, 1e308, float("nan"), float("inf"), [10]],
        "in_channels": [3, 10**6, -1, 0.5],
        "dropout": [5.0, -1.0, "x", float("inf"), None],
        "norm": ["group", "nonsense", None, 3],
        "widthz": [[8, 16]],
    }
    cases = [Case(f"model.json kwargs.{k}={v!r}", edit_spec(set_kwarg(k, v))) for k, values in kwargs.items() for v in values]
    edits: dict[str, Callable[[dict[str, Any]], Any]] = {
        "no widths (the default [32, 64])": lambda s: s["kwargs"].pop("widths"),
        "no num_classes": lambda s: s["kwargs"].pop("num_classes"),
        "kwargs=[]": lambda s: s.__setitem__("kwargs", []),
        "kwargs=null": lambda s: s.__setitem__("kwargs", None),
        "no kwargs": lambda s: s.pop("kwargs"),
        "no architecture": lambda s: s.pop("architecture"),
        "architecture=vit": lambda s: s.__setitem__("architecture", "vit"),
        "architecture=mlp": lambda s: s.__setitem__("architecture", "mlp"),
        "architecture=../../etc": lambda s: s.__setitem__("architecture", "../../etc/passwd"),
        "architecture=5": lambda s: s.__setitem__("architecture", 5),
        "architecture=''": lambda s: s.__setitem__("architecture", ""),
        "task=5": lambda s: s.__setitem__("task", 5),
        "task=unknown": lambda s: s.__setitem__("task", "classificatiom"),
        "class_names=7": lambda s: s.__setitem__("class_names", 7),
        "input_spec=[]": lambda s: s.__setitem__("input_spec", []),
    }
    cases += [Case(f"model.json {name}", edit_spec(edit)) for name, edit in edits.items()]
    raws = {
        "a list": "[1, 2, 3]",
        "null": "null",
        "deeply nested": '{"architecture": "small_cnn", "kwargs": {"widths": ' + "[" * 100_000 + "]" * 100_000 + "}}",
        "a 5000-digit integer": '{"architecture": "small_cnn", "kwargs": {"num_classes": ' + "9" * 5000 + "}}",
        "not UTF-8": '{"architecture": "small_\xff_cnn"}',
    }
    cases += [Case(f"model.json is {name}", write_raw_spec(text)) for name, text in raws.items()]
    cases.append(Case("model.json not UTF-8 bytes", lambda d: (d / SPEC).write_bytes(b'{"architecture": "\xff\xfe"}')))
    return cases


def random_cases(run: Path, rng: random.Random) -> list[Case]:
    cases = []
    for rel in DAMAGED:
        size = (run / rel).stat().st_size
        cuts = sorted({0, 1, size - 1, *(rng.randrange(size) for _ in range(22))})
        cases += [Case(f"{rel} truncated to {at} of {size} bytes", truncate(rel, at)) for at in cuts]
        for _ in range(24):
            at, bit = rng.randrange(size), rng.randrange(8)
            cases.append(Case(f"{rel} byte {at} bit {bit} flipped", set_byte(rel, at, bit=bit)))
        for _ in range(10):
            at, value = rng.randrange(size), rng.randrange(256)
            cases.append(Case(f"{rel} byte {at} set to {value}", set_byte(rel, at, value)))
    # Unprotected files (no sidecar: runs written before checksums): damage to their structure.
    header_end = 8 + struct.unpack("<Q", (run / WEIGHTS).read_bytes()[:8])[0]
    size = (run / WEIGHTS).stat().st_size
    for _ in range(20):
        at = rng.randrange(size)
        cases.append(Case(f"{WEIGHTS} without sidecar truncated to {at}", without_sidecar(WEIGHTS, truncate(WEIGHTS, at))))
    for _ in range(50):
        at, bit = rng.randrange(header_end), rng.randrange(8)
        cases.append(Case(f"{WEIGHTS} without sidecar, header byte {at} bit {bit} flipped", without_sidecar(WEIGHTS, set_byte(WEIGHTS, at, bit=bit))))
    size = (run / LAST).stat().st_size
    for _ in range(20):
        at = rng.randrange(size)
        cases.append(Case(f"{LAST} without sidecar truncated to {at}", without_sidecar(LAST, truncate(LAST, at))))
    return cases


def structural_cases() -> list[Case]:
    return [
        Case("model.json <-> run.json", swap(SPEC, "run.json")),
        Case("config.yaml <-> run.json", swap("config.yaml", "run.json")),
        Case("model.json as config.yaml", copy_over(SPEC, "config.yaml")),
        Case("last.pt as the weights", copy_over(LAST, WEIGHTS)),
        Case("last.pt as the weights, no sidecar", without_sidecar(WEIGHTS, copy_over(LAST, WEIGHTS))),
        Case("the weights as last.pt", copy_over(WEIGHTS, LAST)),
        Case("the weights as last.pt, no sidecar", without_sidecar(LAST, copy_over(WEIGHTS, LAST))),
        Case("best.safetensors as the weights", copy_over("checkpoints/best.safetensors", WEIGHTS)),
        Case("best.safetensors and its sidecar as the weights", lambda d: (copy_over("checkpoints/best.safetensors", WEIGHTS)(d), copy_over("checkpoints/best.safetensors.sha256", f"{WEIGHTS}.sha256")(d))),
        Case("run.json as the weights, no sidecar", without_sidecar(WEIGHTS, copy_over("run.json", WEIGHTS))),
        Case("the sidecars swapped", swap(*SIDECARS)),
        Case("the weights' sidecar is empty", truncate(SIDECARS[0], 0)),
        Case("no model.json", remove(SPEC)),
        Case("no weights", remove(WEIGHTS)),
        Case("no last.pt", remove(LAST)),
        Case("no config.yaml", remove("config.yaml")),
        Case("no run.json", remove("run.json")),
        Case("no sidecars (a run from before checksums)", lambda d: [without_sidecar(r)(d) for r in (WEIGHTS, LAST)]),
        Case("the weights are a folder", replace_by_folder(WEIGHTS)),
        Case("model.json is a folder", replace_by_folder(SPEC)),
        Case("stale temporary files beside every file", stale_temporaries),
        Case("the weights replaced by zeros", lambda d: (d / WEIGHTS).write_bytes(bytes((d / WEIGHTS).stat().st_size))),
        Case("a huge safetensors header length", without_sidecar(WEIGHTS, lambda d: (d / WEIGHTS).write_bytes(struct.pack("<Q", 2**62) + (d / WEIGHTS).read_bytes()[8:]))),
    ]


# ---------------------------------------------------------------------------------- checks
def same(a: Any, b: Any) -> bool:
    """Bit-identical trees of tensors and plain values."""
    if isinstance(a, torch.Tensor):
        return (
            isinstance(b, torch.Tensor)
            and a.dtype == b.dtype
            and a.shape == b.shape
            and torch.equal(a.detach().flatten().contiguous().view(torch.uint8), b.detach().flatten().contiguous().view(torch.uint8))
        )
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and (a == b or (a != a and b != b))


def rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0  # pragma: no cover - not Linux


def loaders(reference: dict[str, Any]) -> dict[str, Callable[[Path], bool]]:
    """Each loader opens the damaged copy and says whether what it loaded is the original."""
    return {
        "Run.model()": lambda d: same(Run.open(d).model().state_dict(), reference["weights"]),
        "Run.predictor()": lambda d: same(Run.open(d).predictor().model.state_dict(), reference["weights"]),
        "load_checkpoint()": lambda d: same(load_checkpoint(d / LAST), reference["checkpoint"]),
        "Run.recipe": lambda d: type(Run.open(d).recipe).__name__ == "Recipe",
    }


def test_damaged_runs_load_their_own_weights_or_fail_in_one_line(trained_run: Path, tmp_path: Path) -> None:
    reference = {"weights": Run.open(trained_run).model().state_dict(), "checkpoint": load_checkpoint(trained_run / LAST)}
    assert reference["weights"] and reference["checkpoint"]["model"]
    cases = random_cases(trained_run, random.Random(SEED)) + structural_cases() + absurd_spec_cases()
    assert len(cases) >= 500

    checks = loaders(reference)
    failures: list[str] = []
    outcomes = {"clean": 0, "refused": 0}
    start_rss, start_peak = rss_mb(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    highest_rss = start_rss
    for i, case in enumerate(cases):
        d = tmp_path / f"case{i}"
        for rel in COPIED:
            (d / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(trained_run / rel, d / rel)
        case.damage(d)
        for loader, load in checks.items():
            try:
                if load(d):
                    outcomes["clean"] += 1
                else:
                    failures.append(f"{case.name}: {loader} loaded OTHER data without an error")
            except UserError as err:
                outcomes["refused"] += 1
                message = str(err)
                if not message.strip() or "\n" in message:
                    failures.append(f"{case.name}: {loader} raised a UserError that is not one line: {message!r}")
            except Exception as err:  # noqa: BLE001 - what the test is looking for
                failures.append(f"{case.name}: {loader} raised {type(err).__name__}: {str(err)[:200]!r}")
        shutil.rmtree(d)
        highest_rss = max(highest_rss, rss_mb())
    peak_growth = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - start_peak
    print(f"{len(cases)} cases, {len(cases) * len(checks)} loads: {outcomes}; RSS {start_rss:.0f} -> highest {highest_rss:.0f} MB")

    assert not failures, f"{len(failures)} bad outcomes:\n" + "\n".join(failures[:40])
    assert outcomes["refused"] > len(cases)  # most damage is caught, not shrugged off
    assert highest_rss - start_rss < MAX_RSS_GROWTH_MB and peak_growth < MAX_RSS_GROWTH_MB, (start_rss, highest_rss, peak_growth)


@pytest.mark.parametrize("rel", [WEIGHTS, LAST])
def test_every_flipped_bit_of_a_protected_file_is_refused(trained_run: Path, tmp_path: Path, rel: str) -> None:
    """Not one random bit in model.safetensors / last.pt goes unnoticed: the sidecar sees them all."""
    rng = random.Random(SEED)
    size = (trained_run / rel).stat().st_size
    load = {WEIGHTS: lambda d: Run.open(d).model(), LAST: lambda d: load_checkpoint(d / LAST)}[rel]
    for k in range(20):
        d = tmp_path / f"c{k}"
        for name in COPIED:
            (d / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(trained_run / name, d / name)
        set_byte(rel, rng.randrange(size), bit=rng.randrange(8))(d)
        with pytest.raises(UserError, match="does not match its SHA-256"):
            load(d)
