"""`strata quantize RUN --method dynamic|static|qat|weight_only|ort`: the run's model in int8, as a derived run.

Problem: int8 weights take a quarter of the bytes and int8 kernels can be faster, but each
quantization path needs its own data (calibration batches, a fine-tune), and a quantized model
that no longer predicts what the float one did is a different model.
Idea: one transformation per path (compression/quantization.py, compression/quantized_model.py):
- dynamic: PT2E, int8 weights, activation scales per batch (no data); for Linear-heavy models.
- static: PT2E, activation ranges from `calibration_batches` batches of the TRAINING split.
- qat: PT2E fake quantization, `qat_epochs` of the run's own training split at
  `qat_lr_scale` times its learning rate (AdamW), then converted (Jacob et al. 2018).
- weight_only: torchao int8 weights of Linear layers (per row), float activations.
- ort: the model exported to ONNX and quantized by ONNX Runtime (`ort_int8` dynamic or static
  QDQ, calibrated on the training split: export/onnx_int8.py); the derived model runs it.
The quantized model is kept only if it predicts the float model's class (argmax) on at least
`min_agreement` of the `check_split` rows (validation by default: choose by validation, the
test split is scored for the record). run.json records the method, the bytes of
model.safetensors before and after, the agreements, and the test metrics before and after.
"""

from __future__ import annotations

import itertools
import tempfile
from pathlib import Path
from typing import Any, Literal

from deepstrata.errors import UserError
from deepstrata.registry import register_tool
from deepstrata.run.run import Run
from deepstrata.tools.base import Derived, phase
from deepstrata.tools.predictions import split_logits

SUPPORTED_TASKS = ("classification", "language_modeling")


def require_argmax_task(run: Run) -> None:
    """A UserError unless the run's outputs are logits whose argmax is a prediction (classes or next tokens)."""
    from deepstrata.tasks.classification import ClassificationTask
    from deepstrata.tasks.language_model import LanguageModelTask

    if not issubclass(run.task_class, (ClassificationTask, LanguageModelTask)):
        raise UserError(
            f"quantize: '{run.path}' is a {run.task_name} run; quantize checks a quantized model by its argmax against the float one, "
            f"so it needs a {' or '.join(SUPPORTED_TASKS)} run (for others, export it and quantize with `strata export {run.path} --int8 dynamic`)"
        )


def test_metrics(run: Run, model: Any) -> dict[str, float]:
    """The run's test metrics with `model` in place of its own (the Trainer's test pass)."""
    from deepstrata.training.trainer import Trainer

    task = run.task()
    own = task.model
    task.model = model
    try:
        return Trainer(device="cpu").test(task, run.loader("test"))
    finally:
        task.model = own


@register_tool("quantize", kind="transformation")
def quantize(
    run: Run,
    *,
    method: Literal["dynamic", "static", "qat", "weight_only", "ort"] = "static",
    calibration_batches: int = 16,
    qat_epochs: int = 1,
    qat_lr_scale: float = 0.05,
    ort_int8: Literal["dynamic", "static"] = "static",
    lowered: bool = True,
    check_split: str = "val",
    min_agreement: float = 0.99,
) -> Derived:
    """Quantize the run's model to int8 and write it as a new run, checked against the float model.

    method: dynamic | static | qat (PT2E, torchao X86InductorQuantizer) | weight_only (torchao int8 Linear weights) | ort (ONNX Runtime int8).
    calibration_batches: TRAINING batches the static ranges (static, ort static) are calibrated on.
    qat_epochs: epochs of fake-quantized fine-tuning on the training split (qat).
    qat_lr_scale: the fine-tuning learning rate as a fraction of the recipe's (qat).
    ort_int8: ONNX Runtime's dynamic or static (QDQ) quantization (ort).
    lowered: run PT2E graphs fused into oneDNN int8 kernels (False: quantize/dequantize around float ops).
    check_split: the split on which the quantized model must predict the float model's class.
    min_agreement: the smallest share of check_split rows (positions, for a language model) that must agree.
    """
    from deepstrata.compression.quantization import agreement, state_bytes

    require_argmax_task(run)
    if calibration_batches < 1 or qat_epochs < 1 or qat_lr_scale <= 0 or not 0 < min_agreement <= 1:
        raise UserError(
            f"quantize: calibration_batches and qat_epochs must be >= 1, qat_lr_scale > 0 and min_agreement in (0, 1]; "
            f"got {calibration_batches}, {qat_epochs}, {qat_lr_scale}, {min_agreement}"
        )
    model = run.model().eval()
    batch = next(iter(run.loader("train")))
    inputs = tuple(run.task().model_inputs(batch))
    spec_kwargs = _spec_kwargs(run, inputs, method, lowered)
    phase(f"quantize: {method} int8")
    if method == "weight_only":
        from deepstrata.compression.quantization import weight_only_int8
        from deepstrata.compression.quantized_model import QuantizedWeights

        quantized: Any = QuantizedWeights(weight_only_int8(model))
    elif method == "ort":
        quantized = _ort(run, model, inputs, ort_int8, calibration_batches)
        spec_kwargs["onnx_bytes"] = int(quantized.onnx.numel())
    else:
        quantized = _pt2e(run, model, inputs, method, calibration_batches=calibration_batches, qat_epochs=qat_epochs, qat_lr_scale=qat_lr_scale, lowered=lowered)
    quantized.eval()
    phase(f"quantize: comparing int8 and float predictions on the {check_split} split")
    agree = agreement(split_logits(run, check_split, model=model)[0], split_logits(run, check_split, model=quantized)[0])
    if agree < min_agreement:
        hint = {
            "static": "try more --calibration-batches, --method qat, or --method dynamic",
            "qat": "try more --qat-epochs or a smaller --qat-lr-scale",
            "dynamic": "try --method weight_only (activations stay float) or --method static",
            "weight_only": "try --method static or --method ort",
            "ort": "try --ort-int8 dynamic, or more --calibration-batches",
        }[method]
        from deepstrata.tasks.language_model import LanguageModelTask

        raise UserError(
            f"quantize: the {method} int8 model predicts the float model's class on only {agree:.2%} of the {check_split} "
            f"{'positions' if issubclass(run.task_class, LanguageModelTask) else 'rows'} (min_agreement {min_agreement:.0%}); it was not kept: {hint}"
        )
    phase("quantize: test metrics before and after")
    before, after = test_metrics(run, model), test_metrics(run, quantized)
    test_agree = agreement(split_logits(run, "test", model=model)[0], split_logits(run, "test", model=quantized)[0])
    size_before, size_after = (run.path / "model.safetensors").stat().st_size, state_bytes(quantized)
    metrics: dict[str, float] = {
        **after,
        **{f"{k}_before": v for k, v in before.items()},
        f"quantize/agreement_{check_split}": agree,
        "quantize/agreement_test": test_agree,
        "quantize/bytes_before": float(size_before),
        "quantize/bytes_after": float(size_after),
        "quantize/size_ratio": size_before / size_after,
    }
    record = {"method": method, "calibration_split": "train" if method in ("static", "qat") or (method == "ort" and ort_int8 == "static") else None}
    if method == "ort":
        record["ort_int8"] = ort_int8
    return Derived(model=quantized, spec_updates={"architecture": "quantized", "kwargs": spec_kwargs, "quantization": record}, metrics=metrics)


def _spec_kwargs(run: Run, inputs: tuple[Any, ...], method: str, lowered: bool) -> dict[str, Any]:
    import torch

    if len(inputs) != 1 or not isinstance(inputs[0], torch.Tensor) or inputs[0].dtype not in (torch.float32, torch.int64):
        raise UserError(f"quantize works on models fed one float32 or int64 tensor; '{run.path}' feeds its model {len(inputs)} input(s) of another kind")
    x = inputs[0]
    return {
        "base": {"architecture": run.architecture, "kwargs": dict(run.spec.get("kwargs", {}))},
        "method": method,
        "example_shape": [int(d) for d in x.shape[1:]],
        "example_dtype": "int64" if x.dtype == torch.int64 else "float32",
        "lowered": bool(lowered) and method != "weight_only",
    }


def _pt2e(run: Run, model: Any, inputs: tuple[Any, ...], method: str, *, calibration_batches: int, qat_epochs: int, qat_lr_scale: float, lowered: bool) -> Any:
    import torch

    from deepstrata.compression.quantization import convert, example_inputs, observe, prepare
    from deepstrata.compression.quantized_model import QuantizedProgram

    example = example_inputs(inputs)
    task = run.task()
    prepared = prepare(model, example, method, name=f"'{run.architecture}'")
    if method == "static":
        phase(f"quantize: calibrating activation ranges on {calibration_batches} training batches")
        batches = (tuple(task.model_inputs(b)) for b in itertools.islice(iter(run.loader("train")), calibration_batches))
        observe(prepared, batches)
    elif method == "dynamic":
        observe(prepared, [example])  # weights are observed at convert; activations per batch at run time
    else:
        lr = float(run.recipe.optimizer.kwargs.get("lr", 1e-3)) * qat_lr_scale
        phase(f"quantize: {qat_epochs} epoch(s) of quantization-aware fine-tuning at lr {lr:g}")
        _finetune(run, prepared, epochs=qat_epochs, lr=lr)
    converted = convert(prepared, method)
    return QuantizedProgram(converted, tuple(torch.zeros_like(t) for t in example), lowered=lowered)


def _finetune(run: Run, prepared: Any, *, epochs: int, lr: float) -> None:
    """Train the fake-quantized graph on the run's training split with its own loss (task.shared_step)."""
    import torch

    from deepstrata.compression.quantization import quiet_torchao
    from deepstrata.compression.quantization import torchao as load_torchao

    load_torchao()  # quietly, before the import below
    from torchao.quantization.pt2e import move_exported_model_to_eval

    # BatchNorm statistics frozen at the parent's (and dropout off): the fine-tune adapts the
    # weights to rounding without re-estimating the statistics (Krishnamoorthi 2018, sec. 3.2)
    move_exported_model_to_eval(prepared)
    task = run.task()
    own = task.model
    params = [p for p in prepared.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    task.model = prepared
    try:
        with quiet_torchao():
            for _ in range(epochs):
                for batch in run.loader("train"):
                    loss = task.shared_step(batch).loss
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
    finally:
        task.model = own


def _ort(run: Run, model: Any, inputs: tuple[Any, ...], method: str, calibration_batches: int) -> Any:
    """The model exported to ONNX (checked by the export code), quantized by ONNX Runtime, held as bytes."""
    from deepstrata.export.metadata import export_metadata
    from deepstrata.export.onnx_file import write_onnx
    from deepstrata.export.onnx_int8 import quantize_onnx
    from deepstrata.export.program import trace
    from deepstrata.compression.quantized_model import OnnxProgram

    task = run.task()
    program = trace(model, inputs, spec=run.spec)
    metadata = export_metadata(dict(run.spec), program.signature, {"recipe": run.name, "run_dir": str(run.path), "lineage": run.lineage})
    with tempfile.TemporaryDirectory(prefix="deepstrata-quantize-") as tmp:
        fp32 = Path(tmp) / "model.fp32.onnx"
        write_onnx(program, fp32, metadata=metadata, external_data="inline", exporter="dynamo", opset=None)
        calibration: Any = ()
        if method == "static":
            phase(f"quantize: calibrating ONNX Runtime int8 ranges on {calibration_batches} training batches")
            batches = itertools.islice(iter(run.loader("train")), calibration_batches)
            calibration = (tuple(t.numpy() for t in task.model_inputs(b)) for b in batches)
        int8 = quantize_onnx(fp32, Path(tmp) / "model.onnx", method=method, calibration=calibration)  # type: ignore[arg-type]
        return OnnxProgram.from_bytes(int8.read_bytes())
