"""model.json + model.safetensors: both checked, and compared on the meta device, before anything is allocated."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file, save_file
from tests.run.run_helpers import copy_run
from torch import nn

from deepstrata.cli.main import main as cli_main
from deepstrata.errors import UserError
from deepstrata.registry import MODELS, catalog
from deepstrata.run import artifact
from deepstrata.run.integrity import sidecar, write_checked

MODEL_NAMES = sorted(catalog()["model"])
# Registered models whose factory cannot run on the meta device, with the reason. Each falls
# back to a real build compared with the header before loading (no allocation guard). None now.
BUILDS_ONLY_FOR_REAL: dict[str, str] = {
    # its graph is rebuilt by exporting the base model (torch.export) and replaying the PT2E
    # quantization steps on example inputs, which needs real tensors; the stored int8 numbers are
    # then copied in (compression/quantized_model.py)
    "quantized": "torch.export and PT2E prepare/convert trace real tensors",
}


def edit_spec(run: Path, **changes: Any) -> Path:
    spec = json.loads((run / "model.json").read_text())
    for key, value in changes.items():
        if key == "kwargs":
            spec["kwargs"].update(value)
        else:
            spec[key] = value
    (run / "model.json").write_text(json.dumps(spec))
    return run / "model.json"


# ---- finding: a broken model.json gave KeyError / JSONDecodeError / TypeError, exit 1, naming no file
@pytest.mark.parametrize(
    ("content", "says"),
    [
        ('{"architecture": "small_cnn", "kwargs": {', "not valid JSON"),
        ('{"kwargs": {}}', "the required key 'architecture' is missing"),
        ('{"architecture": "small_cnn"}', "the required key 'kwargs' is missing"),
        ('{"architecture": "small_cnn", "kwargs": [8, 16]}', "'kwargs' must be a JSON object"),
        ('{"architecture": ["small_cnn"], "kwargs": {}}', "'architecture' must be a string"),
        ('{"architecture": "small_cnm", "kwargs": {}}', "architecture: unknown model 'small_cnm'; did you mean small_cnn?"),
        ('{"architecture": "small_cnn", "kwargs": {"widths": "8,16"}}', "kwargs.widths: Input should be a valid list"),
        ('{"architecture": "small_cnn", "kwargs": {"widths": [8, "wide"]}}', "kwargs.widths.1: Input should be a valid integer"),
        ('{"architecture": "small_cnn", "kwargs": {"width": [8, 16]}}', "kwargs.width: unknown key; did you mean widths?"),
        ("[]", "expected a JSON object, got list"),
    ],
    ids=["json", "no-architecture", "no-kwargs", "kwargs-list", "architecture-list", "unknown-architecture", "widths-str", "widths-item", "typo", "list"],
)
def test_a_broken_model_json_is_one_line_naming_the_file(trained_run: Path, tmp_path: Path, content: str, says: str) -> None:
    run = copy_run(trained_run, tmp_path / "run")
    (run / "model.json").write_text(content)
    with pytest.raises(UserError) as err:
        artifact.load_model(run)
    message = str(err.value)
    assert message.startswith(f"{run / 'model.json'}: ") and says in message and "\n" not in message


def test_the_cli_says_which_file_is_broken_and_exits_2(trained_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = copy_run(trained_run, tmp_path / "run")
    (run / "model.json").write_text('{"kwargs": {}}')
    assert cli_main(["predict", str(run), "unused.npy"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {run / 'model.json'}: the required key 'architecture' is missing") and "\n" not in err


@pytest.mark.parametrize("sidecar_too", [False, True], ids=["no-sidecar", "with-sidecar"])
@pytest.mark.parametrize(
    "damage",
    [lambda b: b[: len(b) // 2], lambda b: b[:5], lambda b: b"", lambda b: b"PK\x03\x04 a zip, not safetensors" + bytes(64), lambda b: b"name: tiny\n"],
    ids=["half", "five-bytes", "empty", "zip", "yaml"],
)
def test_truncated_or_foreign_weights_are_one_line_naming_the_file(trained_run: Path, tmp_path: Path, damage: Any, sidecar_too: bool, capsys: pytest.CaptureFixture[str]) -> None:
    run = copy_run(trained_run, tmp_path / "run")
    weights = run / "model.safetensors"
    weights.write_bytes(damage(weights.read_bytes()))
    if not sidecar_too:
        sidecar(weights).unlink()  # the structure checks alone, as for a run from before checksums
    with pytest.raises(UserError) as err:
        artifact.load_model(run)
    assert str(err.value).startswith(str(weights)) and "\n" not in str(err.value)
    assert cli_main(["predict", str(run), "unused.npy"]) == 2
    assert capsys.readouterr().err.strip().startswith(f"error: {weights}")


def test_weights_of_another_dtype_are_refused_not_cast(trained_run: Path, tmp_path: Path) -> None:
    run = copy_run(trained_run, tmp_path / "run")
    weights = run / "model.safetensors"
    doubled = {k: v.double() if v.is_floating_point() else v for k, v in load_file(weights).items()}
    write_checked(weights, lambda p: save_file(doubled, str(p)))  # a matching sidecar: only the dtype is wrong
    with pytest.raises(UserError, match=r"'features\.0\.weight' is F32 in the model, F64 in the file"):
        artifact.load_model(run)


# ---- finding: absurd constructor arguments allocated the model before its shapes were compared
MEMORY_PROBE = r"""
import json, resource, shutil, sys
from pathlib import Path
from deepstrata.errors import UserError
from deepstrata.run.run import Run

run, work, cases = Path(sys.argv[1]), Path(sys.argv[2]), json.loads(sys.argv[3])
Run.open(run).model()  # warm up: imports, registry, allocator
# Guard the machine should this run against code that does allocate: 4 GiB more address space at most.
vm_kb = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmSize:"))
resource.setrlimit(resource.RLIMIT_AS, (vm_kb * 1024 + (4 << 30), resource.getrlimit(resource.RLIMIT_AS)[1]))
start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
for i, kwargs in enumerate(cases):
    d = shutil.copytree(run, work / str(i))
    spec = json.loads((d / "model.json").read_text())
    spec["kwargs"].update(kwargs)
    (d / "model.json").write_text(json.dumps(spec))
    try:
        Run.open(d).model()
        outcome = "loaded"
    except UserError as err:
        outcome = "UserError: " + str(err)
    except BaseException as err:
        outcome = f"{type(err).__name__}: {err}"
    grew = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - start) / 1024  # peak growth so far
    print(json.dumps({"kwargs": kwargs, "dir": str(d), "outcome": outcome, "grew_mb": grew}), flush=True)
"""
ABSURD = [{"widths": [4096, 64]}, {"widths": [10**9]}, {"num_classes": 10**9}, {"widths": [8, 10**9]}]


def test_absurd_arguments_fail_in_one_line_before_any_large_allocation(trained_run: Path, tmp_path: Path) -> None:
    """Peak RSS (in a fresh process, after a warm-up load) grows by < 100 MB over all the cases (~3 MB now)."""
    done = subprocess.run([sys.executable, "-c", MEMORY_PROBE, str(trained_run), str(tmp_path), json.dumps(ABSURD)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    results = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert len(results) == len(ABSURD)
    for result in results:
        assert result["outcome"].startswith(f"UserError: {result['dir']}/model.") and "\n" not in result["outcome"], result
        assert result["grew_mb"] < 100, result  # before: widths=[4096, 64] built its 600 MB of weights first


# ---- meta-device construction, for every registered model
@pytest.mark.parametrize("name", MODEL_NAMES)
def test_every_registered_model_builds_on_meta_as_it_saves(name: str, tmp_path: Path) -> None:
    """The meta build has the saved tensors' names, shapes and dtypes, and the same buffers (saved or not)."""
    kwargs = MODELS.meta(name)["example"].get("kwargs", {})
    factory = MODELS.get(name)
    torch.manual_seed(0)
    real = factory(**kwargs)
    artifact.save_model(real, tmp_path, {"architecture": name, "kwargs": kwargs})
    meta = artifact.build_on_meta(factory, kwargs, tmp_path / "model.json")
    if name in BUILDS_ONLY_FOR_REAL:
        assert meta is None, f"{name} builds on meta now: remove it from BUILDS_ONLY_FOR_REAL"
        return
    assert meta is not None, f"{name} cannot be built on the meta device; make it, or list it in BUILDS_ONLY_FOR_REAL with the reason"
    assert all(t.is_meta for t in [*meta.parameters(), *meta.buffers()])
    header = artifact.read_header(tmp_path / "model.safetensors")
    described = {k: (tuple(v.shape), artifact._DTYPE_NAMES[v.dtype]) for k, v in meta.state_dict().items()}
    assert described == header
    assert {k: (v.shape, v.dtype) for k, v in meta.named_buffers()} == {k: (v.shape, v.dtype) for k, v in real.named_buffers()}
    artifact.check_fits(meta, header, tmp_path / "model.safetensors", tmp_path / "model.json", include_all=True)
    loaded, _ = artifact.load_model(tmp_path)
    state = real.state_dict()
    assert all(torch.equal(v, state[k]) for k, v in loaded.state_dict().items())


class NeedsValues(nn.Module):
    """Reads a tensor's value while building: impossible on the meta device."""

    def __init__(self, n: int):
        super().__init__()
        self.layer = nn.Linear(n, 2)
        self.scale = float(torch.ones(1).sum().item())


def needs_values(*, n: int = 4) -> NeedsValues:
    return NeedsValues(n)


class BigBuffer(nn.Module):
    def __init__(self, n: int):
        super().__init__()
        self.layer = nn.Linear(2, 2)
        self.register_buffer("table", torch.zeros(n), persistent=False)  # computed, never saved


def big_buffer(*, n: int = 4) -> BigBuffer:
    return BigBuffer(n)


@pytest.fixture
def registered_test_models(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(MODELS._items, "test_needs_values", needs_values)
    monkeypatch.setitem(MODELS._items, "test_big_buffer", big_buffer)


def test_a_factory_that_cannot_build_on_meta_falls_back_to_a_checked_real_build(registered_test_models: None, tmp_path: Path) -> None:
    assert artifact.build_on_meta(needs_values, {"n": 4}, tmp_path / "model.json") is None
    model = needs_values(n=4)
    artifact.save_model(model, tmp_path, {"architecture": "test_needs_values", "kwargs": {"n": 4}})
    loaded, _ = artifact.load_model(tmp_path)
    assert torch.equal(loaded.layer.weight, model.layer.weight)
    edit_spec(tmp_path, kwargs={"n": 5})
    with pytest.raises(UserError, match=r"'layer\.weight' is \(2, 5\) in the model, \(2, 4\) in the file"):
        artifact.load_model(tmp_path)


def test_a_huge_unsaved_buffer_is_refused_before_it_is_allocated(registered_test_models: None, tmp_path: Path) -> None:
    """Non-persistent buffers are not in the file, so the header cannot bound them: the meta build measures them."""
    artifact.save_model(big_buffer(n=4), tmp_path, {"architecture": "test_big_buffer", "kwargs": {"n": 4}})
    assert artifact.load_model(tmp_path)[0].table.shape == (4,)
    edit_spec(tmp_path, kwargs={"n": (1 << 28) + (1 << 26)})  # 1.25 GiB of float32
    with pytest.raises(UserError, match=r"model\.json: kwargs build a model that needs 1\.\d GiB, 1\.\d GiB more than the weights"):
        artifact.load_model(tmp_path)


@pytest.mark.slow
def test_a_pretrained_encoder_classifier_loads_through_the_fallback(tmp_path: Path) -> None:
    """hf_encoder_classifier(pretrained=True) reads its encoder from disk, which transformers refuses on meta."""
    pytest.importorskip("transformers")
    from deepstrata.data.hf_directory import MINILM, hf_model_dir

    try:
        hf_model_dir(MINILM)
    except UserError as err:
        pytest.skip(f"the default encoder directory is not installed: {err}")
    factory = MODELS.get("hf_encoder_classifier")
    assert artifact.build_on_meta(factory, {"num_classes": 3}, tmp_path / "model.json") is None
    torch.manual_seed(0)
    model = factory(num_classes=3)
    artifact.save_model(model, tmp_path, {"architecture": "hf_encoder_classifier", "kwargs": {"num_classes": 3}})
    loaded, _ = artifact.load_model(tmp_path)
    state = model.state_dict()
    assert all(torch.equal(v, state[k]) for k, v in loaded.state_dict().items())
