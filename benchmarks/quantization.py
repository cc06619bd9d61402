"""`strata quantize` on MNIST LeNet-5, the MNIST ResNet and char-GPT: every int8 path in size, accuracy and latency.

Problem: which int8 path makes these models smaller and faster on this CPU without costing
accuracy? Issue 17's goals: int8 >= 3.5x smaller on disk; <= 0.3 points of test accuracy lost
(LeNet-5, ResNet) and <= 0.05 bits/char (char-GPT); at least one int8 path >= 1.5x faster than
fp32 eager PyTorch at batch 64, measured in the same run.
Idea: train `recipes/mnist_lenet.yaml`, `recipes/mnist_resnet.yaml` and `recipes/char_gpt.yaml`
(seed 0, one thread each, side by side), then run `strata quantize RUN --method M --json` for
every method (CNNs: dynamic, static, qat, weight_only, ort with static and dynamic ONNX Runtime
int8; char-GPT: dynamic and weight_only), all at the tool's defaults except char-GPT's
`--min-agreement 0.97` (see the handoff notes). Size is the bytes of each run's
model.safetensors; accuracy and bits/char are the tool's test metrics. Latency: median of one
forward pass at batch 1 and 64 of real test inputs on THREADS threads, every path of a model
interleaved round by round in one process after warm-up: fp32 eager, ONNX Runtime fp32 (the
same export the ort path quantizes), the PT2E graphs as converted (quantize/dequantize around
float ops: "reference") and lowered to oneDNN int8 kernels (what the derived runs run), torchao
weight-only, and the ONNX Runtime int8 files. The machine is shared with other jobs.

    .venv/bin/python benchmarks/run_all.py --only quantization
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit  # noqa: E402
from _recipe_run import REPO, STRATA, run_recipe  # noqa: E402

os.environ.setdefault("DEEPSTRATA_DATA", str(REPO.parent / "shared" / "data"))
MODELS = {"LeNet-5": "recipes/mnist_lenet.yaml", "ResNet": "recipes/mnist_resnet.yaml", "char-GPT": "recipes/char_gpt.yaml"}
CNN_PATHS = {"dynamic": [], "static": [], "qat": [], "weight_only": [], "ort static": ["--method", "ort", "--ort-int8", "static"], "ort dynamic": ["--method", "ort", "--ort-int8", "dynamic"]}
GPT_PATHS = {"dynamic": ["--min-agreement", "0.97"], "weight_only": ["--min-agreement", "0.97"]}
THREADS = 2
ROUNDS = 5
CALLS = {1: 40, 64: 8}


def quantize(run_dir: Path, label: str, extra: list[str]) -> dict:
    args = extra if extra and extra[0] == "--method" else ["--method", label, *extra]
    cmd = [STRATA, "quantize", str(run_dir), *args, "--json"]
    t = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-3000:])
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}"}
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    return {"run_dir": out["run_dir"], "metrics": out["metrics"], "wall_s": time.perf_counter() - t}


def train_and_quantize(name: str) -> dict:
    metrics, run_dir, wall, _, _ = run_recipe(MODELS[name], "trainer.num_threads=1")
    print(f"{name}: trained in {wall:.0f} s: {metrics}", file=sys.stderr, flush=True)
    paths = GPT_PATHS if name == "char-GPT" else CNN_PATHS
    results = {}
    for label, extra in paths.items():
        results[label] = quantize(run_dir, label, extra)
        print(f"{name}: {label}: {results[label]}", file=sys.stderr, flush=True)
    return {"run_dir": str(run_dir), "metrics": metrics, "train_wall_s": wall, "paths": results}


def ort_fp32(run, model, inputs):  # noqa: ANN001, ANN201
    """An ONNX Runtime session on the float export (what the ort path quantizes)."""
    from deepstrata.export.metadata import export_metadata
    from deepstrata.export.onnx_file import OnnxModel, write_onnx
    from deepstrata.export.program import trace

    program = trace(model, inputs, spec=run.spec)
    path = Path(tempfile.mkdtemp(prefix="ds_quant_")) / "model.onnx"
    write_onnx(program, path, metadata=export_metadata(dict(run.spec), program.signature, {}), external_data="inline")
    return OnnxModel(path, threads=THREADS)


def latency(name: str, trained: dict) -> dict:
    """Median ms per forward pass, every path of this model interleaved round by round."""
    import torch

    from deepstrata.run.run import Run

    torch.set_num_threads(THREADS)
    run = Run.open(trained["run_dir"])
    fp32 = run.model().eval()
    x = run.task().model_inputs(next(iter(run.loader("test"))))[0]
    x = torch.cat([x] * (64 // len(x) + 1))[:64]
    fns = {"fp32 eager": fp32}
    for label, r in trained["paths"].items():
        if "run_dir" not in r:
            continue
        model = Run.open(r["run_dir"]).model()
        fns[f"int8 {label}"] = model
        if hasattr(model, "program") and model.lowered:
            fns[f"int8 {label} (reference graph)"] = model.program
    if name != "char-GPT":
        session = ort_fp32(run, fp32, (x[:2],))
        fns["fp32 ONNX Runtime"] = lambda xb, s=session: s.run(xb.numpy())
    times: dict[str, list[float]] = {f"{k}|{b}": [] for k in fns for b in CALLS}
    with torch.inference_mode():
        for batch, calls in CALLS.items():
            xb = x[:batch].contiguous()
            for fn in fns.values():
                for _ in range(3):
                    fn(xb)
            for _ in range(ROUNDS):
                for label, fn in fns.items():
                    for _ in range(calls):
                        t = time.perf_counter()
                        fn(xb)
                        times[f"{label}|{batch}"].append(time.perf_counter() - t)
    return {k: 1000 * statistics.median(v) for k, v in times.items()}


def main() -> None:
    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=3) as pool:
        trained = dict(zip(MODELS, pool.map(train_and_quantize, MODELS)))
    tables, figures, data = [], [], {}
    for name, t in trained.items():
        lat = latency(name, t)
        data[name] = {**t, "latency_ms": lat}
        lm = name == "char-GPT"
        key = "test/bits_per_char" if lm else "test/accuracy"
        base = t["metrics"][key]
        size = (Path(t["run_dir"]) / "model.safetensors").stat().st_size
        eager64 = lat["fp32 eager|64"]
        quality = "test bits/char" if lm else "test accuracy"
        delta = "bits/char delta" if lm else "lost (points)"
        rows = [
            f"**{name}** ({THREADS} threads; fp32 eager {lat['fp32 eager|1']:.3f} ms at batch 1, {eager64:.2f} ms at batch 64)",
            "",
            f"| path | model.safetensors bytes | smaller | {quality} | {delta} | agrees with fp32 (test) | batch 1 (ms) | batch 64 (ms) | batch 64 speed-up over fp32 eager |",
            "|---|---|---|---|---|---|---|---|---|",
            f"| fp32 eager | {size:,} | 1.00x | {base:.4f} | | | {lat['fp32 eager|1']:.3f} | {eager64:.2f} | 1.00x |",
        ]
        if "fp32 ONNX Runtime|64" in lat:
            rows.append(f"| fp32 ONNX Runtime | | | | | | {lat['fp32 ONNX Runtime|1']:.3f} | {lat['fp32 ONNX Runtime|64']:.2f} | {eager64 / lat['fp32 ONNX Runtime|64']:.2f}x |")
        best_speed, best_path = 0.0, ""
        for label, r in t["paths"].items():
            if "metrics" not in r:
                rows.append(f"| int8 {label} | not kept: {r['error'][:160]} | | | | | | | |")
                continue
            m = r["metrics"]
            after = m[key]
            change = after - base if lm else 100 * (base - after)
            speed = eager64 / lat[f"int8 {label}|64"]
            if speed > best_speed:
                best_speed, best_path = speed, label
            rows.append(
                f"| int8 {label} | {int(m['quantize/bytes_after']):,} | {m['quantize/size_ratio']:.2f}x | {after:.4f} | {change:+.3f} | {m['quantize/agreement_test']:.2%} | "
                f"{lat[f'int8 {label}|1']:.3f} | {lat[f'int8 {label}|64']:.2f} | {speed:.2f}x |"
            )
            ref = f"int8 {label} (reference graph)"
            if f"{ref}|64" in lat:
                rows.append(f"| {ref} | | | | | | {lat[f'{ref}|1']:.3f} | {lat[f'{ref}|64']:.2f} | {eager64 / lat[f'{ref}|64']:.2f}x |")
            goal = "<= 0.05 bits/char" if lm else "<= 0.3 points"
            figures.append({"name": f"{name}: int8 {label} size ratio / {delta}", "value": f"{m['quantize/size_ratio']:.2f}x / {change:+.3f}", "unit": "x / " + ("bits/char" if lm else "points"),
                            "note": f"goals >= 3.5x, {goal}; agreement {m['quantize/agreement_test']:.2%} on the test split"})
        figures.append({"name": f"{name}: fastest int8 path at batch 64 against fp32 eager", "value": round(best_speed, 2), "unit": "x", "note": f"int8 {best_path}; goal >= 1.5x; {THREADS} threads, shared machine"})
        tables.append("\n".join(rows))
    emit(
        "quantization",
        ".venv/bin/python benchmarks/run_all.py --only quantization",
        figures,
        table="\n\n".join(tables),
        description=(
            "strata quantize RUN --method dynamic|static|qat|weight_only|ort on MNIST LeNet-5, the MNIST ResNet and char-GPT (seed 0, trained by the benchmark): "
            f"model.safetensors bytes, test accuracy (bits/char) before and after, and median latency of one forward pass on {THREADS} threads, "
            f"every path of a model interleaved in one process (shared 2-core machine). Total wall {time.perf_counter() - t0:.0f} s."
        ),
        data=data,
    )


if __name__ == "__main__":
    main()
