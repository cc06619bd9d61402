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
    int8: Literal["none", "dynamic", "static"] = "none",
    calibration_batches: int = 16,
    min_agreement: float = 0.99,
) -> Analysis:
    """Export the run's model to ONNX or a torch.export `.pt2` program, checked against the eager model.

    format: onnx (ONNX Runtime, any language) or pt2 (torch.export.load, AOTInductor).
    exporter: dynamo (torch.onnx.export on torch.export) or legacy (the TorchScript exporter, a fallback); ONNX only.
    external_data: auto (weights over 1 GiB go to model.onnx.data), inline or external; ONNX only.
    opset: the ONNX opset; 0 takes the exporter's default.
    split: the split whose first batch is traced and checked.
    tolerance: the largest max-absolute difference from the eager model accepted at batch 1 and 7.
    int8: none, or ONNX Runtime int8 (export/onnx_int8.py): dynamic (activations quantized per
        batch) or static (QDQ, activation ranges calibrated on the TRAINING split); model.onnx is
        then the int8 file and model.fp32.onnx the float one it was made from. ONNX only.
    calibration_batches: training batches the static ranges are calibrated on.
    min_agreement: the smallest share of `split` rows on which the int8 file must predict the
        float file's class (argmax) for the int8 file to be kept.
    """
    import torch

    from deepstrata.export.metadata import export_metadata
    from deepstrata.export.program import tile, trace

    if tolerance <= 0:
        raise UserError(f"export: tolerance must be positive, got {tolerance}")
    if format == "pt2" and (exporter != "dynamo" or external_data != "auto" or int8 != "none"):
        raise UserError("export: exporter, external_data and int8 apply to --format onnx only; drop them for pt2")
    if int8 != "none" and external_data == "external":
        raise UserError("export: int8 quantization needs the weights inside the ONNX file; drop --external-data external")
    if calibration_batches < 1 or not 0 < min_agreement <= 1:
        raise UserError(f"export: calibration_batches must be >= 1 and min_agreement in (0, 1], got {calibration_batches}, {min_agreement}")
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
        int8_rows: list[dict[str, object]] = []
        if int8 != "none":
            written, int8_rows = _int8(run, task, written[0], int8, split=split, calibration_batches=calibration_batches, min_agreement=min_agreement)
        files = {p.name: p for p in written}
        sizes = {p.name: p.stat().st_size for p in written}
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    sig = program.signature
    main = "model.fp32.onnx" if int8 != "none" else written[0].name  # the file that was checked against eager
    tables = {
        "check": rows,
        "files": [{"file": n, "bytes": b} for n, b in sizes.items()],
        "signature": [{"role": role, "name": t.name, "dtype": t.dtype, "shape": str(t.shape)} for role, ts in (("input", sig.inputs), ("output", sig.outputs)) for t in ts],
    }
    how = (
        f"onnxruntime.InferenceSession('{written[0].name}').run(None, {{'{sig.inputs[0].name}': x}})"
        if format == "onnx"
        else f"torch.export.load('{main}').module()(x)"
    )
    summary = (
        f"{main} ({(sizes[main] if int8 != 'none' else sum(sizes.values())) / 2**20:.2f} MiB) reproduces the eager model to {worst:.2g} at batch sizes "
        f"{', '.join(map(str, CHECK_BATCHES))}; inputs {', '.join(f'{t.name} {t.dtype}{t.shape}' for t in sig.inputs)} (-1: any batch size). "
        f"Use it with {how}; the preprocessing and class names are in its metadata (deepstrata.preprocessing, deepstrata.model)."
    )
    metrics = {"export/max_abs_diff": worst, "export/bytes": float(sum(sizes.values())), "export/files": float(len(sizes))}
    if int8_rows:
        tables = {"int8": int8_rows, **tables}
        row = int8_rows[0]
        metrics.update({f"export/int8/{k}": float(v) for k, v in row.items() if isinstance(v, (int, float)) and not isinstance(v, bool)})
        metrics["export/bytes"] = float(sizes["model.onnx"])
        summary = (
            f"model.onnx is the {int8} int8 file ({sizes['model.onnx'] / 2**20:.2f} MiB, {row['size_ratio']:.2f}x smaller than model.fp32.onnx); "
            f"it predicts the float file's class on {row['agreement']:.2%} of the {row['rows']} {split} rows. " + summary
        )
    return Analysis(metrics=metrics, tables=tables, summary=summary, files=files)


def _int8(run: Run, task, fp32: Path, method: str, *, split: str, calibration_batches: int, min_agreement: float) -> tuple[list[Path], list[dict[str, object]]]:  # noqa: ANN001
    """Quantize the checked float file; keep it as model.fp32.onnx and the int8 one as model.onnx, after the agreement check."""
    import itertools

    from deepstrata.export.onnx_file import OnnxModel
    from deepstrata.export.onnx_int8 import argmax_agreement, quantize_onnx

    float_path = fp32.with_name("model.fp32.onnx")
    fp32.rename(float_path)
    calibration = ()
    if method == "static":
        phase(f"export: calibrating int8 ranges on {calibration_batches} training batches")
        batches = itertools.islice(iter(run.loader("train")), calibration_batches)
        calibration = (tuple(t.numpy() for t in task.model_inputs(b)) for b in batches)
    phase(f"export: quantizing to int8 ({method}, ONNX Runtime)")
    int8_path = quantize_onnx(float_path, fp32, method=method, calibration=calibration)  # type: ignore[arg-type]
    floats, ints = OnnxModel(float_path), OnnxModel(int8_path)
    phase(f"export: comparing int8 and float predictions on the {split} split")
    agree = rows = right_float = right_int8 = 0
    labelled = True
    for batch in run.loader(split):
        xs = tuple(t.numpy() for t in task.model_inputs(batch))
        a, b = floats.run(*xs)[0], ints.run(*xs)[0]
        n = len(a)
        agree += round(argmax_agreement(a, b) * n)
        rows += n
        y = batch[1] if isinstance(batch, (tuple, list)) and len(batch) == 2 else None
        if y is not None and y.dim() == 1 and a.ndim == 2:
            right_float += int((a.argmax(1) == y.numpy()).sum())
            right_int8 += int((b.argmax(1) == y.numpy()).sum())
        else:
            labelled = False
    agreement = agree / max(rows, 1)
    if agreement < min_agreement:
        raise UserError(
            f"export: the {method} int8 file predicts the float file's class on only {agreement:.2%} of the {split} rows "
            f"(min_agreement {min_agreement:.0%}); it was not kept. Try --int8 static with more --calibration-batches, or --int8 dynamic"
        )
    row: dict[str, object] = {
        "method": method,
        "rows": rows,
        "agreement": agreement,
        "float_bytes": float_path.stat().st_size,
        "int8_bytes": int8_path.stat().st_size,
        "size_ratio": float_path.stat().st_size / int8_path.stat().st_size,
    }
    if labelled and rows:
        row.update(accuracy_float=right_float / rows, accuracy_int8=right_int8 / rows)
    return [int8_path, float_path], [row]


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
