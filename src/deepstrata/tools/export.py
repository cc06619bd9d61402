"""`strata export RUN --format onnx|pt2`: the run's model as a file other runtimes open.

Problem: a model that only deepstrata can load cannot be served by ONNX Runtime or a C++
program, and an export that silently computes something else than the trained model is worse
than none.
Idea: trace the model on one real batch of the run (`export/program.py`), write the ONNX file
or the `.pt2` program with the run's metadata inside (`export/metadata.py`), then open the
written file the way its users will (ONNX Runtime; `torch.export.load`) and compare its outputs
with the eager model at batch sizes 1 and 7. An export off by more than `tolerance` is an
error, not a file. The files land in `RUN/tools/export/<time>/` like any analysis, so every
derived run (calibrated, pruned, quantized) exports the same way.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Literal

from deepstrata.errors import UserError
from deepstrata.registry import register_tool
from deepstrata.run.run import Run
from deepstrata.tools.base import Analysis, phase, scratch_dir

CHECK_BATCHES = (1, 7)
SUFFIX = {"onnx": ".onnx", "pt2": ".pt2"}


@register_tool("export", kind="analysis")
def export(
    run: Run,
    *,
    format: Literal["onnx", "pt2"] = "onnx",
    exporter: Literal["dynamo", "legacy"] = "dynamo",
    external_data: Literal["auto", "inline", "external"] = "auto",
    opset: int = 0,
    split: str = "test",
    tolerance: float = 1e-4,
) -> Analysis:
    """Export the run's model to ONNX or a torch.export `.pt2` program, checked against the eager model.

    format: onnx (ONNX Runtime, any language) or pt2 (torch.export.load, AOTInductor).
    exporter: dynamo (torch.onnx.export on torch.export) or legacy (the TorchScript exporter, a fallback); ONNX only.
    external_data: auto (weights over 1 GiB go to model.onnx.data), inline or external; ONNX only.
    opset: the ONNX opset; 0 takes the exporter's default.
    split: the split whose first batch is traced and checked.
    tolerance: the largest max-absolute difference from the eager model accepted at batch 1 and 7.
    """
    import torch

    from deepstrata.export.metadata import export_metadata
    from deepstrata.export.program import tile, trace

    if tolerance <= 0:
        raise UserError(f"export: tolerance must be positive, got {tolerance}")
    if format == "pt2" and (exporter != "dynamo" or external_data != "auto"):
        raise UserError("export: exporter and external_data apply to --format onnx only; drop them for pt2")
    phase("export: loading the model and one batch")
    model = run.model().eval()
    task = run.task()
    batch = next(iter(run.loader(split)), None)
    if batch is None:
        raise UserError(f"export: the {split} split of '{run.path}' is empty; choose another with --split")
    inputs = tuple(task.model_inputs(batch))
    phase("export: tracing with torch.export (batch size left free)")
    program = trace(model, inputs, spec=run.spec)
    source = {"recipe": run.name, "run_dir": str(run.path), "lineage": run.lineage, "deepstrata_version": _version()}
    metadata = export_metadata(dict(run.spec), program.signature, source)
    scratch = scratch_dir(run, "export")
    try:
        path = scratch / f"model{SUFFIX[format]}"
        phase(f"export: writing {path.name}")
        if format == "onnx":
            from deepstrata.export.onnx_file import OnnxModel, write_onnx

            written = write_onnx(program, path, metadata=metadata, external_data=external_data, exporter=exporter, opset=opset or None)
            session = OnnxModel(path)

            def run_file(*xs: torch.Tensor) -> list[torch.Tensor]:
                return [torch.from_numpy(o) for o in session.run(*(x.numpy() for x in xs))]
        else:
            from deepstrata.export.pt2_file import read_pt2, write_pt2

            written = write_pt2(program, path, metadata=metadata)
            loaded = read_pt2(path)[0].module()

            def run_file(*xs: torch.Tensor) -> list[torch.Tensor]:
                with torch.no_grad():
                    return list(loaded(*xs))

        rows, worst = [], 0.0
        for size in CHECK_BATCHES:
            phase(f"export: comparing with the eager model at batch size {size}")
            xs = tile(inputs, size)
            with torch.no_grad():
                eager = program.traced(*xs)
            got = run_file(*xs)
            diff = max(float((g.to(e.dtype) - e).abs().max()) if e.numel() else 0.0 for g, e in zip(got, eager))
            same_shape = all(tuple(g.shape) == tuple(e.shape) for g, e in zip(got, eager))
            if not same_shape:
                raise UserError(f"export: the {format} file gives shapes {[tuple(g.shape) for g in got]} at batch {size}, the model {[tuple(e.shape) for e in eager]}")
            worst = max(worst, diff)
            rows.append({"batch_size": size, "max_abs_diff": diff, "outputs": len(eager)})
        if worst > tolerance:
            raise UserError(
                f"export: the {format} file differs from the eager model by up to {worst:.3g} (tolerance {tolerance:g}); "
                "it was not kept. Try --exporter legacy, or raise --tolerance if that difference is acceptable"
            )
        files = {p.name: p for p in written}
        sizes = {p.name: p.stat().st_size for p in written}
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    sig = program.signature
    main = written[0].name
    tables = {
        "check": rows,
        "files": [{"file": n, "bytes": b} for n, b in sizes.items()],
        "signature": [{"role": role, "name": t.name, "dtype": t.dtype, "shape": str(t.shape)} for role, ts in (("input", sig.inputs), ("output", sig.outputs)) for t in ts],
    }
    how = (
        f"onnxruntime.InferenceSession('{main}').run(None, {{'{sig.inputs[0].name}': x}})"
        if format == "onnx"
        else f"torch.export.load('{main}').module()(x)"
    )
    summary = (
        f"{main} ({sum(sizes.values()) / 2**20:.2f} MiB) reproduces the eager model to {worst:.2g} at batch sizes "
        f"{', '.join(map(str, CHECK_BATCHES))}; inputs {', '.join(f'{t.name} {t.dtype}{t.shape}' for t in sig.inputs)} (-1: any batch size). "
        f"Use it with {how}; the preprocessing and class names are in its metadata (deepstrata.preprocessing, deepstrata.model)."
    )
    metrics = {"export/max_abs_diff": worst, "export/bytes": float(sum(sizes.values())), "export/files": float(len(sizes))}
    return Analysis(metrics=metrics, tables=tables, summary=summary, files=files)


def _version() -> str:
    from deepstrata import __version__

    return __version__


def latest_export(run: Run, format: Literal["onnx", "pt2"] = "onnx") -> Path | None:
    """The newest `strata export` file of `format` in the run, or None."""
    for result in reversed(run.tool_results("export")):
        if result.get("args", {}).get("format") == format:
            name = f"model{SUFFIX[format]}"
            if name in result.get("files", []):
                return Path(result["dir"]) / name
    return None
