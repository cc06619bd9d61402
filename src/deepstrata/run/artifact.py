"""The saved model: `model.safetensors` + `model.json`, and nothing that runs code on load.

Problem: `torch.save(model)` pickles Python objects; loading such a file from someone else
can execute arbitrary code, and it breaks when the class moves.
Idea: store only tensors (safetensors, with a SHA-256 sidecar) plus a JSON description: the
registered architecture name, its constructor arguments, the deepstrata version and the input
spec. Loading looks the architecture up in the registry, builds it from the JSON arguments and
copies the tensors in.

Loading trusts neither file. In order: model.json must be JSON with `architecture` (a
registered model) and `kwargs` (checked against the factory's typed signature); the weights
must match their sidecar (`run/integrity.py`); the model is then built on the meta device (no
memory) and its parameter names, shapes and dtypes compared with the safetensors header (read
without loading a tensor). Only when they agree is the model built for real and loaded, so
`widths: [4096, 64]` in model.json is a one-line error, not 600 MB of allocation first. The
real build runs the factory again rather than materialising the meta model, because
non-persistent buffers (positional tables, masks, noise schedules) are computed there and are
not in the file. A factory that cannot run on the meta device (one that reads a tensor's
values while building) falls back to the real build, compared with the header before loading.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from deepstrata.errors import UserError
from deepstrata.run.atomic import atomic_write_text
from deepstrata.transfer import sparse_weights
from deepstrata.run.integrity import verify, write_checked

WEIGHTS = "model.safetensors"
SPEC = "model.json"
RETRAIN = "restore it or train again"
# Memory a build may need beyond the stored tensors (non-persistent buffers); more is refused.
MAX_EXTRA_BYTES = 1 << 30
_MAX_SPEC_BYTES = 64 << 20

# torch dtype -> the name a safetensors header gives it.
_DTYPE_NAMES = {
    torch.float64: "F64",
    torch.float32: "F32",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.int64: "I64",
    torch.int32: "I32",
    torch.int16: "I16",
    torch.int8: "I8",
    torch.uint8: "U8",
    torch.bool: "BOOL",
}


def save_model(model: nn.Module, directory: str | Path, spec: dict[str, Any], *, sparse: bool = False) -> Path:
    """Write weights (+ their .sha256) and `spec` (architecture, kwargs, task, input_spec, ...) into `directory`.

    sparse: store mostly-zero tensors as bitmask + non-zero values (`transfer/sparse_weights.py`; pruned runs).
    """
    from safetensors.torch import save_file

    from deepstrata import __version__

    directory = Path(directory)
    weights = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if sparse:
        write_checked(directory / WEIGHTS, lambda p: sparse_weights.save_sparse(weights, p))
    else:
        write_checked(directory / WEIGHTS, lambda p: save_file(weights, str(p), metadata={"format": "pt"}))
    full = {"deepstrata_version": __version__, **spec}
    atomic_write_text(directory / SPEC, json.dumps(full, indent=2, sort_keys=True) + "\n")
    return directory


def read_spec(directory: str | Path) -> dict[str, Any]:
    """model.json, checked: a mapping with `architecture` (a name) and `kwargs` (a mapping)."""
    path = Path(directory) / SPEC
    if not path.is_file():
        raise UserError(f"'{directory}' holds no {SPEC}; pass a finished run directory (runs/<recipe>/<time>/)")
    if path.stat().st_size > _MAX_SPEC_BYTES:
        raise UserError(f"{path}: {path.stat().st_size} bytes is too large for a model description; the file was replaced or damaged: {RETRAIN}")
    try:
        spec = json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as err:
        raise UserError(f"{path}: not UTF-8 text (byte {err.start}); the file is damaged: {RETRAIN}") from None
    except (ValueError, RecursionError) as err:  # JSONDecodeError, or an integer too long to read
        raise UserError(f"{path}: not valid JSON ({_one_line(err)}); the file is damaged: {RETRAIN}") from None
    _check_spec(path, spec)
    return spec


def _check_spec(path: Path, spec: Any) -> None:
    def bad(what: str) -> UserError:
        return UserError(f"{path}: {what}; the file is damaged or is not a model description: {RETRAIN}")

    if not isinstance(spec, dict):
        raise bad(f"expected a JSON object, got {type(spec).__name__}")
    for key, kind in (("architecture", str), ("kwargs", dict)):
        if key not in spec:
            raise bad(f"the required key '{key}' is missing")
        if not isinstance(spec[key], kind):
            raise bad(f"'{key}' must be a {'string' if kind is str else 'JSON object'}, got {type(spec[key]).__name__}")
    task = spec.get("task")
    if task is not None and not (isinstance(task, str) or (isinstance(task, dict) and isinstance(task.get("name"), str))):
        raise bad(f"'task' must be a task name, got {task!r:.80}")
    names = spec.get("class_names")
    if names is not None and not (isinstance(names, list) and all(isinstance(n, str) for n in names)):
        raise bad("'class_names' must be a list of strings")
    if spec.get("input_spec") is not None and not isinstance(spec["input_spec"], dict):
        raise bad(f"'input_spec' must be a JSON object, got {type(spec['input_spec']).__name__}")


def load_model(directory: str | Path, *, map_location: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model from model.json + model.safetensors alone; returns (model, spec).

    Every way the two files can be broken or mismatched is a one-line UserError naming the
    file, raised before the model is allocated (see the module docstring).
    """
    directory = Path(directory)
    spec = read_spec(directory)
    spec_path, weights_path = directory / SPEC, directory / WEIGHTS
    factory, kwargs = model_factory(spec, spec_path)
    if not weights_path.is_file():
        raise UserError(f"'{directory}' holds {SPEC} but no {WEIGHTS}; the run did not finish")
    verify(weights_path)
    header = read_header(weights_path)  # first: it turns a truncated or foreign file into a one-line error
    header = sparse_weights.dense_header(weights_path, header) or header  # a pruned run's weights may be stored sparse
    model = build_on_meta(factory, kwargs, spec_path)
    if model is not None:
        replace_modules(model, spec, spec_path)
        check_fits(model, header, weights_path, spec_path, include_all=True)
    model = replace_modules(_build(factory, kwargs, spec_path), spec, spec_path)
    check_fits(model, header, weights_path, spec_path)
    try:
        state = sparse_weights.load_dense(weights_path, device=str(map_location))
        model.load_state_dict(state)
    except Exception as err:  # noqa: BLE001 - safetensors and torch raise several kinds
        raise UserError(f"{weights_path}: cannot be loaded into the model ({_one_line(err)}); {RETRAIN}") from None
    model.eval()
    return model, spec


def replace_modules(model: nn.Module, spec: Mapping[str, Any], spec_path: Path) -> nn.Module:
    """The layer replacements training made (`replaced_modules`: DP-SGD's BatchNorm -> GroupNorm), redone."""
    replaced = spec.get("replaced_modules")
    if replaced is None:
        return model
    from deepstrata.privacy.compat import OPACUS_FIXERS, fix_in_place

    if replaced != OPACUS_FIXERS:
        raise UserError(f"{spec_path}: replaced_modules {replaced!r} is not a replacement this version knows ('{OPACUS_FIXERS}'); {RETRAIN}")
    fix_in_place(model)
    return model


def model_factory(spec: Mapping[str, Any], spec_path: Path) -> tuple[Callable[..., nn.Module], dict[str, Any]]:
    """The registered factory model.json names and its kwargs, type-checked against its signature."""
    try:
        from deepstrata.arguments import validate_component_kwargs
    except ImportError:  # pragma: no cover - older layout
        from deepstrata.config import validate_component_kwargs  # type: ignore[attr-defined,no-redef]
    from deepstrata.registry import MODELS

    try:
        factory = MODELS.get(spec["architecture"])
    except UserError as err:
        raise UserError(f"{spec_path}: architecture: {err}") from None
    kwargs = dict(spec["kwargs"])
    try:
        validate_component_kwargs(factory, kwargs, path="kwargs")
    except UserError as err:
        raise UserError(f"{spec_path}: {_one_line(err)}; {RETRAIN}") from None
    return factory, kwargs


def read_header(path: Path) -> dict[str, tuple[tuple[int, ...], str]]:
    """{tensor name: (shape, safetensors dtype name)} from the header alone (nothing loaded)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), "pt") as fh:
            out = {}
            for name in fh.keys():
                part = fh.get_slice(name)
                out[name] = (tuple(int(d) for d in part.get_shape()), str(part.get_dtype()))
            return out
    except Exception as err:  # noqa: BLE001 - SafetensorError, OSError, ...
        raise UserError(f"{path}: not a readable safetensors file ({_one_line(err)}); the file is truncated, damaged or of another kind: {RETRAIN}") from None


def build_on_meta(factory: Callable[..., nn.Module], kwargs: Mapping[str, Any], spec_path: Path) -> nn.Module | None:
    """The model with no memory behind its tensors; None when the factory cannot run on meta.

    A factory that rejects its arguments rejects them here too (UserError); one that needs real
    tensor values while building (`.item()`, data-dependent ops) says "meta" and gets None.
    """
    try:
        with torch.random.fork_rng(devices=[]), torch.device("meta"), warnings.catch_warnings():  # meta draws nothing, but be sure
            # A factory that copies weights while building (bert_classifier's init_from) copies into
            # meta tensors here, a no-op torch warns about; the real build below copies for real.
            warnings.filterwarnings("ignore", message=".*copying from a non-meta parameter.*meta parameter", category=UserWarning)
            return factory(**kwargs)
    except UserError as err:
        raise UserError(f"{spec_path}: kwargs: {_one_line(err)}") from None
    except Exception as err:  # noqa: BLE001 - a factory can raise anything on bad arguments
        if isinstance(err, NotImplementedError) or "meta" in str(err).lower():
            return None
        raise _build_error(spec_path, factory, err) from None


def _build(factory: Callable[..., nn.Module], kwargs: Mapping[str, Any], spec_path: Path) -> nn.Module:
    try:
        return factory(**kwargs)
    except UserError as err:
        raise UserError(f"{spec_path}: kwargs: {_one_line(err)}") from None
    except Exception as err:  # noqa: BLE001
        raise _build_error(spec_path, factory, err) from None


def _build_error(spec_path: Path, factory: Callable[..., Any], err: Exception) -> UserError:
    name = getattr(factory, "__name__", "the model")
    return UserError(f"{spec_path}: kwargs do not build a {name} ({type(err).__name__}: {_one_line(err)}); {RETRAIN}")


def check_fits(model: nn.Module, header: Mapping[str, tuple[tuple[int, ...], str]], weights_path: Path, spec_path: Path, *, include_all: bool = False) -> None:
    """Refuse weights whose names, shapes or dtypes are not the model's (before loading them).

    `include_all` (meta models) also refuses a build that would need far more memory than the
    stored tensors: non-persistent buffers are not in the file, so only this shows their size.
    """
    state = model.state_dict()
    problems = []
    missing = [k for k in state if k not in header]
    unexpected = [k for k in header if k not in state]
    if missing:
        problems.append(f"the model has {_names(missing)}, the file does not")
    if unexpected:
        problems.append(f"the file has {_names(unexpected)}, the model does not")
    for key, tensor in state.items():
        if key not in header:
            continue
        shape, dtype = header[key]
        if tuple(tensor.shape) != shape:
            problems.append(f"'{key}' is {tuple(tensor.shape)} in the model, {shape} in the file")
        elif _DTYPE_NAMES.get(tensor.dtype, dtype) != dtype:
            problems.append(f"'{key}' is {_DTYPE_NAMES[tensor.dtype]} in the model, {dtype} in the file")
        if len(problems) >= 3:
            break
    if problems:
        raise UserError(
            f"{weights_path} does not fit the model {spec_path.name} describes: {'; '.join(problems)}. "
            f"The two files do not belong together (or one is damaged): {RETRAIN}"
        )
    if include_all:
        stored = sum(_numel(shape) * tensor.element_size() for (shape, _), tensor in zip((header[k] for k in state), state.values()))
        tensors = {id(t): t for t in [*model.parameters(), *model.buffers()]}
        needed = sum(t.numel() * t.element_size() for t in tensors.values())
        if needed - stored > MAX_EXTRA_BYTES:
            raise UserError(
                f"{spec_path}: kwargs build a model that needs {needed / 2**30:.1f} GiB, {(needed - stored) / 2**30:.1f} GiB more "
                f"than the weights it holds (buffers that are not saved); the arguments were changed or damaged: {RETRAIN}"
            )


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def _names(keys: list[str]) -> str:
    shown = ", ".join(f"'{k}'" for k in keys[:3])
    return shown + (f" (+{len(keys) - 3} more)" if len(keys) > 3 else "")


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return text if len(text) <= 300 else text[:297] + "..."
