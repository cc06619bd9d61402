"""Profile: how big and how fast a trained model is, measured on the run's own test data.

Problem: accuracy alone does not say whether a model fits a device or a latency budget, and the
usual size and speed figures are quoted from papers or guessed from the architecture rather than
measured on the model and the inputs the run actually used.
Idea: load the run's model, take one real test batch (through the task's `model_inputs`), and
measure parameters per layer, bytes on disk, FLOPs per sample (torch's FlopCounterMode: 2 x the
multiply-adds of matrix products and convolutions; element-wise ops, pooling, norms and a graph
network's sparse aggregation count 0; fused recurrent kernels are counted by formula),
and for each batch size (the real batch tiled, `Task.repeat_inputs`) the median latency of a few
timed forwards after a warm-up and the peak memory one forward allocates.

Peak memory is the most bytes held, at any moment of one forward, by tensors allocated during it
(activations, temporaries, the output), above what was allocated before it: weights and the input
batch are not counted. On CUDA it is `torch.cuda.max_memory_allocated()` minus the allocation
before the forward; on CPU it is the running sum of the CPU allocator's allocation and free
events that `torch.profiler.profile(profile_memory=True)` records during the forward, at its
maximum. Latency is wall-clock time with `torch.get_num_threads()` intra-op threads (stated).
"""

from __future__ import annotations

import contextlib
import html
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Literal

from deepstrata.errors import UserError
from deepstrata.registry import register_report_section, register_tool
from deepstrata.run.run import Run
from deepstrata.tools.base import Analysis, phase

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from torch import nn

    from deepstrata.report.html import Section


@register_tool("profile", kind="analysis")
def profile(
    run: Run,
    *,
    batch_sizes: list[int] = [1, 32, 256],  # noqa: B006 - read, never mutated
    repeats: int = 5,
    warmup: int = 2,
    split: Literal["train", "val", "test"] = "test",
    device: str = "cpu",
    max_input_mb: float = 1024.0,
) -> Analysis:
    """Parameters per layer, size on disk, FLOPs per sample, latency and peak memory per batch size.

    batch_sizes: forwards are timed at each size (the first test batch tiled to that many samples).
    repeats: timed forwards per size (the median is reported), after `warmup` untimed ones.
    split: where the real batch comes from. device: "cpu", "cuda", "cuda:1" or "auto".
    max_input_mb: batch sizes whose inputs would exceed this are skipped (a graph tiled 256 times).
    """
    import torch

    if not batch_sizes or any(int(b) < 1 for b in batch_sizes):
        raise UserError(f"profile: batch_sizes must be positive integers, got {list(batch_sizes)}; e.g. --batch-sizes 1,32,256")
    if repeats < 1 or warmup < 0:
        raise UserError(f"profile: repeats must be >= 1 and warmup >= 0, got repeats={repeats}, warmup={warmup}")
    dev = _device(device)
    sizes = sorted({int(b) for b in batch_sizes})

    phase(f"profile: loading the model and one {split} batch")
    model = run.model().to(dev)  # first: a run without weights fails here, before its data is built
    task = run.task()
    batch = next(iter(run.loader(split)), None)
    if batch is None:
        raise UserError(f"profile: the {split} split of '{run.path}' is empty; choose another with --split")
    inputs = _to(task.model_inputs(batch), dev)
    forward = entry_point(model)
    params = {id(p): p for p in model.parameters()}
    n_params = sum(p.numel() for p in params.values())
    n_trainable = sum(p.numel() for p in params.values() if p.requires_grad)
    one_sample = _nbytes(task.repeat_inputs(inputs, 1))

    layers, shapes = _layer_rows(model), {}
    rows, metrics, skipped = [], {}, []
    for i, size in enumerate(sizes):
        if one_sample * size > max_input_mb * 2**20:
            skipped.append(size)
            continue
        x = task.repeat_inputs(inputs, size)
        phase(f"profile: batch size {size}: FLOPs, {warmup} warm-up + {repeats} timed forwards, memory")
        with _output_shapes(model, shapes) if not shapes else contextlib.nullcontext():
            flops = count_flops(forward, x)
        latency_ms = time_forward(forward, x, repeats=repeats, warmup=warmup, device=dev)
        peak = peak_memory(forward, x, device=dev)
        row = {
            "batch_size": size,
            "latency_ms": round(latency_ms, 4),
            "samples_per_s": round(size / (latency_ms / 1000.0), 2) if latency_ms > 0 else float("inf"),
            "peak_memory_bytes": peak,
            "flops_per_sample": flops / size,
        }
        rows.append(row)
        metrics[f"latency_ms_bs{size}"] = row["latency_ms"]
        metrics[f"samples_per_s_bs{size}"] = row["samples_per_s"]
        if peak is not None:
            metrics[f"peak_memory_bytes_bs{size}"] = peak
    if not rows:
        raise UserError(f"profile: every batch size needs more than max_input_mb={max_input_mb} of input ({one_sample} bytes a sample); raise --max-input-mb or give smaller --batch-sizes")
    phase(f"profile: per-layer and per-operator time at batch size {rows[0]['batch_size']}")
    x = task.repeat_inputs(inputs, rows[0]["batch_size"])
    per_layer = layer_latency(model, forward, x, repeats=repeats, device=dev)
    for row in layers:
        row["output"] = shapes.get(row["layer"], "-")
        row["latency_ms"] = round(per_layer[row["layer"]], 4) if row["layer"] in per_layer else "-"
    ops = operator_times(forward, x, repeats=repeats)

    from deepstrata.run.artifact import WEIGHTS

    threads = torch.get_num_threads()
    metrics = {
        "params": n_params,
        "trainable_params": n_trainable,
        "size_bytes": (run.path / WEIGHTS).stat().st_size,
        "flops_per_sample": rows[0]["flops_per_sample"],
        "threads": threads,
        **metrics,
    }
    where = f"{dev.type.upper()}" + (f" ({torch.cuda.get_device_name(dev)})" if dev.type == "cuda" else "")
    summary = (
        f"{type(model).__name__}: {n_params:,} parameters ({n_trainable:,} trainable), {metrics['size_bytes']:,} bytes on disk, "
        f"{rows[0]['flops_per_sample']:,.0f} FLOPs per sample (FlopCounterMode: 2 x multiply-adds of matmuls and convolutions). "
        f"Timed on {where} with {threads} thread(s): median of {repeats} forwards after {warmup} warm-up, a batch of B tiling "
        f"the first {split} batch. Peak memory: bytes allocated during one forward above those held before it "
        + ("(torch.cuda.max_memory_allocated)." if dev.type == "cuda" else "(CPU allocator events from torch.profiler).")
        + (f" Skipped batch sizes {skipped}: input above max_input_mb={max_input_mb}." if skipped else "")
        + f" Per layer (layers table, latency_ms): the median over {repeats} forwards at batch {rows[0]['batch_size']} of the time between each "
        "leaf module's forward hooks, so a graph with no submodules (a quantized PT2E program) has none; per operator (operators table): "
        "torch.profiler's self CPU time of each aten or backend op per forward, which covers float and quantized models alike."
    )
    tables = {"batch_sizes": rows, "layers": layers, "operators": ops}
    figures = {"throughput": _throughput_figure(rows)} if len(rows) > 1 else {}
    return Analysis(metrics=metrics, tables=tables, figures=figures, summary=summary)


# --------------------------------------------------------------------------------------
# Measurements (each usable on its own: tests and benchmarks call them on bare models).
# --------------------------------------------------------------------------------------


def entry_point(model: nn.Module) -> Callable[..., Any]:
    """What a forward pass of `model` is: the model itself, or `objective` for a model without `forward`."""
    from torch import nn

    if type(model).forward is nn.Module.forward and hasattr(model, "objective"):
        return model.objective
    return model


def count_flops(forward: Callable[..., Any], inputs: tuple[Any, ...]) -> int:
    """FLOPs of one no-grad call `forward(*inputs)`, as torch.utils.flop_counter counts them.

    A recurrent layer that torch runs as one fused kernel (nn.LSTM on CPU, cuDNN's RNNs) is
    invisible to the counter; such a layer (one in which it counted nothing) is counted by
    formula instead: 2 x T x gates x H x (input + recurrent width) per layer and direction.
    """
    import torch
    from torch import nn
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    model = forward if isinstance(forward, nn.Module) else getattr(forward, "__self__", None)
    recurrent = [m for m in model.modules() if isinstance(m, nn.RNNBase)] if isinstance(model, nn.Module) else []
    before: dict[int, int] = {}
    missed = [0]

    def pre(module: nn.Module, args: Any) -> None:
        before[id(module)] = counter.get_total_flops()

    def post(module: nn.Module, args: Any, output: Any) -> None:
        if counter.get_total_flops() == before.pop(id(module), 0):
            missed[0] += recurrent_flops(module, args[0])

    handles = [h for m in recurrent for h in (m.register_forward_pre_hook(pre), m.register_forward_hook(post))]
    try:
        with torch.no_grad(), counter:
            forward(*inputs)
    finally:
        for h in handles:
            h.remove()
    return int(counter.get_total_flops()) + missed[0]


def recurrent_flops(rnn: nn.RNNBase, x: Any) -> int:
    """2 x multiply-adds of an nn.RNN/GRU/LSTM over input x (a padded tensor or a PackedSequence)."""
    from torch.nn.utils.rnn import PackedSequence

    gates = {"LSTM": 4, "GRU": 3}.get(rnn.mode, 1)  # RNN_TANH / RNN_RELU: one
    if isinstance(x, PackedSequence):
        steps = int(x.data.shape[0])  # every real (sample, time) pair once
    else:
        steps = int(x.shape[0] * x.shape[1]) if x.dim() == 3 else int(x.shape[0])  # (N, T, I) / (T, N, I), or unbatched (T, I)
    hidden, recurrent_width = rnn.hidden_size, rnn.proj_size or rnn.hidden_size
    directions = 2 if rnn.bidirectional else 1
    total = 0
    for layer in range(rnn.num_layers):
        width_in = rnn.input_size if layer == 0 else recurrent_width * directions
        per_step = gates * hidden * (width_in + recurrent_width) + (hidden * rnn.proj_size if rnn.proj_size else 0)
        total += 2 * per_step * steps * directions
    return total


def layer_latency(model: nn.Module, forward: Callable[..., Any], inputs: tuple[Any, ...], *, repeats: int, device: torch.device) -> dict[str, float]:
    """Leaf module name -> median milliseconds per forward spent between its pre- and post-forward hooks.

    A module called several times in one forward (a shared ReLU) sums its calls. Hooks and the
    device sync they need add a little to every layer; the figures rank layers, the batch-size
    table gives the model's own latency.
    """
    import torch

    leaves = {name or "(model)": m for name, m in model.named_modules() if not any(True for _ in m.children())}
    spent: dict[str, float] = {}
    started: dict[str, float] = {}

    def pre(name: str) -> Callable[..., None]:
        def hook(module: Any, args: Any) -> None:
            _sync(device)
            started[name] = time.perf_counter()

        return hook

    def post(name: str) -> Callable[..., None]:
        def hook(module: Any, args: Any, output: Any) -> None:
            _sync(device)
            spent[name] = spent.get(name, 0.0) + time.perf_counter() - started.pop(name, time.perf_counter())

        return hook

    handles = [m.register_forward_pre_hook(pre(n)) for n, m in leaves.items()] + [m.register_forward_hook(post(n)) for n, m in leaves.items()]
    samples: dict[str, list[float]] = {name: [] for name in leaves}
    try:
        with torch.no_grad():
            forward(*inputs)  # warm-up
            for _ in range(repeats):
                spent.clear()
                forward(*inputs)
                for name in leaves:
                    samples[name].append(spent.get(name, 0.0))
    finally:
        for h in handles:
            h.remove()
    return {name: statistics.median(t) * 1000.0 for name, t in samples.items() if any(t)}


def operator_times(forward: Callable[..., Any], inputs: tuple[Any, ...], *, repeats: int, top: int = 15) -> list[dict[str, Any]]:
    """The `top` operators by self CPU time per forward (torch.profiler), with their calls and share of the total."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    with torch.no_grad():
        forward(*inputs)  # warm-up outside the profile
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(repeats):
                forward(*inputs)
    events = [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
    total = sum(e.self_cpu_time_total for e in events) or 1.0
    events.sort(key=lambda e: e.self_cpu_time_total, reverse=True)
    return [
        {
            "operator": e.key,
            "calls_per_forward": round(e.count / repeats, 2),
            "self_cpu_ms_per_forward": round(e.self_cpu_time_total / 1000.0 / repeats, 4),
            "share": round(e.self_cpu_time_total / total, 4),
        }
        for e in events[:top]
    ]


def time_forward(forward: Callable[..., Any], inputs: tuple[Any, ...], *, repeats: int, warmup: int, device: torch.device) -> float:
    """Median wall-clock milliseconds of `repeats` no-grad calls after `warmup` untimed ones."""
    import torch

    times = []
    with torch.no_grad():
        for _ in range(warmup):
            forward(*inputs)
        _sync(device)
        for _ in range(repeats):
            start = time.perf_counter()
            forward(*inputs)
            _sync(device)
            times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000.0


def peak_memory(forward: Callable[..., Any], inputs: tuple[Any, ...], *, device: torch.device) -> int | None:
    """Peak bytes allocated during one no-grad forward, above what was allocated before (see the module notes).

    None when the CPU profiler records no memory events (a torch build without them).
    """
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        with torch.no_grad():
            out = forward(*inputs)
        torch.cuda.synchronize(device)
        peak = torch.cuda.max_memory_allocated(device) - before
        del out
        return int(peak)
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    prof = torch_profile(activities=[ProfilerActivity.CPU], profile_memory=True)
    with _quiet_stderr():  # kineto writes start/stop notices straight to file descriptor 2
        prof.start()
    try:
        with torch.no_grad():
            out = forward(*inputs)  # kept alive until the profiler stops: its bytes count, its free does not
    finally:
        with _quiet_stderr():
            prof.stop()
    with _quiet_stderr():
        events = prof.profiler.kineto_results.events() if prof.profiler is not None else []
    changes = sorted((e.start_ns(), e.nbytes()) for e in events if e.name() == "[memory]" and e.device_type() == torch.autograd.DeviceType.CPU)
    del out
    if not changes:
        return None
    held, peak = 0, 0
    for _, nbytes in changes:
        held += nbytes
        peak = max(peak, held)
    return int(peak)


# --------------------------------------------------------------------------------------
# Helpers.
# --------------------------------------------------------------------------------------


def _layer_rows(model: nn.Module) -> list[dict[str, Any]]:
    """One row per leaf module and per module owning parameters directly (a class token, positions)."""
    rows, seen = [], set()
    for name, module in model.named_modules():
        own = [(n, p) for n, p in module.named_parameters(recurse=False) if id(p) not in seen]
        seen.update(id(p) for _, p in own)
        if not own and any(True for _ in module.children()):
            continue  # a container: its children have the rows
        if not name and not own:
            continue
        rows.append(
            {
                "layer": name or "(model)",
                "type": type(module).__name__,
                "params": sum(p.numel() for _, p in own),
                "trainable": sum(p.numel() for _, p in own if p.requires_grad),
                "weights": ", ".join(f"{n} {'x'.join(str(s) for s in p.shape) or 'scalar'}" for n, p in own),
            }
        )
    return rows


@contextlib.contextmanager
def _output_shapes(model: nn.Module, shapes: dict[str, str]) -> Iterator[None]:
    """Record each module's first output shape (for the layers table) during the block."""

    def hook(name: str) -> Callable[..., None]:
        def record(module: Any, args: Any, output: Any) -> None:
            first = output[0] if isinstance(output, (tuple, list)) and output else output
            if name not in shapes and hasattr(first, "shape"):
                shapes[name] = "x".join(str(s) for s in first.shape)

        return record

    handles = [m.register_forward_hook(hook(name or "(model)")) for name, m in model.named_modules()]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def _device(name: str) -> torch.device:
    import torch

    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise UserError(f"profile: unknown device '{name}'; use cpu, cuda, cuda:<index> or auto") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"profile: device '{name}' asked for, but torch sees no CUDA device here; use --device cpu")
    if dev.type not in ("cpu", "cuda"):
        raise UserError(f"profile measures on cpu or cuda, got '{name}'")
    return dev


def _to(inputs: tuple[Any, ...], device: torch.device) -> tuple[Any, ...]:
    return tuple(a.to(device) if hasattr(a, "to") and hasattr(a, "shape") else a for a in inputs)


def _nbytes(inputs: tuple[Any, ...]) -> int:
    return sum(a.numel() * a.element_size() for a in inputs if hasattr(a, "element_size"))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        import torch

        torch.cuda.synchronize(device)


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Silence file descriptor 2 for the block (C++ notices no Python setting can turn off), then restore it."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real descriptor 2 (an embedded interpreter): nothing to silence
        yield
        return
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


def _throughput_figure(rows: list[dict[str, Any]]) -> Any:
    from matplotlib.figure import Figure  # no pyplot: no global figure state

    fig = Figure(figsize=(5, 3))
    ax = fig.add_subplot()
    ax.plot([r["batch_size"] for r in rows], [r["samples_per_s"] for r in rows], marker="o")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("batch size")
    ax.set_ylabel("samples / s")
    ax.set_title("Throughput by batch size")
    ax.grid(alpha=0.3)
    return fig


@register_report_section("profile")
def profile_section(run: Run) -> Section | None:
    """The latest `strata profile` result: size, FLOPs, latency and memory per batch size, parameters per layer."""
    from deepstrata.report.html import Section
    from deepstrata.report.sections.tools import result_html

    result = run.latest_tool_result("profile")
    if result is None:
        return None
    intro = f"<p>From <code>strata profile</code>, {html.escape(str(result.get('created', '')))}.</p>"
    return Section("Profile: size, FLOPs, latency, memory", intro + result_html(result), order=70)
