"""ONNX Runtime int8 on the MNIST LeNet-5 and ResNet runs: size on disk, accuracy, latency.

Problem: does `strata export RUN --int8 dynamic|static` give a model that is smaller and
faster on this CPU without costing accuracy? Issue 17's goals: int8 files >= 3.5x smaller,
<= 0.3 points of test accuracy lost, at least one int8 path >= 1.5x faster than fp32 eager
PyTorch at batch 64, measured in the same run.
Idea: train `recipes/mnist_lenet.yaml` and `recipes/mnist_resnet.yaml` (seed 0), export each
as float ONNX and as dynamic and static int8 (static calibrated on 16 training batches), then
- accuracy of every file on MNIST's 10,000 test images (the export tool scores both the float
  and the int8 file), and the share of test images on which int8 predicts the float class;
- median latency of one forward pass at batch 1 and 64 on 2 threads: eager PyTorch fp32,
  ONNX Runtime fp32, ONNX Runtime int8 dynamic and static, all on the same real test images,
  interleaved in one process after warm-up.

    .venv/bin/python benchmarks/run_all.py --only int8_onnx
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit  # noqa: E402
from _recipe_run import REPO, run_recipe  # noqa: E402

os.environ.setdefault("DEEPSTRATA_DATA", str(REPO.parent / "shared" / "data"))
MODELS = {"LeNet-5": "recipes/mnist_lenet.yaml", "ResNet": "recipes/mnist_resnet.yaml"}
THREADS = 2
REPEATS = {1: 300, 64: 40}


def median_ms(fn, repeats: int) -> float:  # noqa: ANN001
    for _ in range(5):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times)


def measure(name: str, run_dir: Path) -> dict:
    import numpy as np
    import torch

    from deepstrata.export.onnx_file import OnnxModel
    from deepstrata.run.run import Run
    from deepstrata.tools.base import apply_tool

    run = Run.open(run_dir)
    torch.set_num_threads(THREADS)
    exports = {}
    for method in ("dynamic", "static"):
        print(f"{name}: int8 {method}", file=sys.stderr, flush=True)
        result = apply_tool("export", run, int8=method)
        exports[method] = (result.result_dir, result.tables["int8"][0])
    float_file = exports["dynamic"][0] / "model.fp32.onnx"
    sessions = {
        "ONNX Runtime fp32": OnnxModel(float_file, threads=THREADS),
        "ONNX Runtime int8 dynamic": OnnxModel(exports["dynamic"][0] / "model.onnx", threads=THREADS),
        "ONNX Runtime int8 static": OnnxModel(exports["static"][0] / "model.onnx", threads=THREADS),
    }
    model = run.model().eval()
    x = next(iter(run.loader("test")))[0]
    x = torch.cat([x] * (64 // len(x) + 1))[:64] if len(x) < 64 else x[:64]
    latency = {}
    for batch in (1, 64):
        xb = x[:batch].contiguous()
        xn = np.ascontiguousarray(xb.numpy())

        def eager() -> None:
            with torch.inference_mode():
                model(xb)

        latency[("PyTorch eager fp32", batch)] = median_ms(eager, REPEATS[batch])
        for label, session in sessions.items():
            latency[(label, batch)] = median_ms(lambda s=session: s.run(xn), REPEATS[batch])
    weights = (Path(run_dir) / "model.safetensors").stat().st_size
    return {"exports": {m: row for m, (_, row) in exports.items()}, "latency": {f"{k[0]}|{k[1]}": v for k, v in latency.items()}, "safetensors_bytes": weights}


def main() -> None:
    with ThreadPoolExecutor(max_workers=2) as pool:
        trained = dict(zip(MODELS, pool.map(lambda r: run_recipe(r, "trainer.num_threads=1"), MODELS.values())))
    rows = [
        "| model | path | file bytes | smaller than fp32 ONNX | test accuracy | lost (points) | agrees with fp32 | batch 1 (ms) | batch 64 (ms) | batch 64 speed-up over eager fp32 |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    figures, data = [], {}
    for name, (metrics, run_dir, wall, _, _) in trained.items():
        print(f"{name}: trained, test {metrics['test/accuracy']:.4f} in {wall:.0f} s", file=sys.stderr, flush=True)
        m = measure(name, run_dir)
        data[name] = m
        lat = m["latency"]
        eager64 = lat["PyTorch eager fp32|64"]
        dyn, sta = m["exports"]["dynamic"], m["exports"]["static"]
        base_acc = dyn["accuracy_float"]
        rows.append(f"| {name} | PyTorch eager fp32 | {m['safetensors_bytes']:,} (safetensors) | | {metrics['test/accuracy']:.4f} | | | {lat['PyTorch eager fp32|1']:.3f} | {eager64:.2f} | 1.00x |")
        rows.append(f"| {name} | ONNX Runtime fp32 | {dyn['float_bytes']:,} | 1.00x | {base_acc:.4f} | | | {lat['ONNX Runtime fp32|1']:.3f} | {lat['ONNX Runtime fp32|64']:.2f} | {eager64 / lat['ONNX Runtime fp32|64']:.2f}x |")
        best = None
        for method, row in (("dynamic", dyn), ("static", sta)):
            label = f"ONNX Runtime int8 {method}"
            lost = 100 * (base_acc - row["accuracy_int8"])
            speed = eager64 / lat[f"{label}|64"]
            best = max(best or 0.0, speed)
            rows.append(
                f"| {name} | {label} | {row['int8_bytes']:,} | {row['size_ratio']:.2f}x | {row['accuracy_int8']:.4f} | {lost:+.2f} | {row['agreement']:.2%} | "
                f"{lat[f'{label}|1']:.3f} | {lat[f'{label}|64']:.2f} | {speed:.2f}x |"
            )
            figures.append({"name": f"{name}: int8 {method} size ratio / accuracy lost / agreement", "value": f"{row['size_ratio']:.2f}x / {lost:+.2f} / {row['agreement']:.2%}",
                            "unit": "x / points / share", "note": "goals >= 3.5x, <= 0.3 points; agreement is on the 10,000 test images"})
        figures.append({"name": f"{name}: fastest int8 path at batch 64 against eager fp32", "value": round(best or 0.0, 2), "unit": "x", "note": f"goal >= 1.5x; {THREADS} threads; eager {eager64:.2f} ms"})
    emit(
        "int8_onnx",
        ".venv/bin/python benchmarks/run_all.py --only int8_onnx",
        figures,
        table="\n".join(rows),
        description=(
            "strata export RUN --int8 dynamic|static on the MNIST LeNet-5 and ResNet runs (seed 0): file size, test accuracy of the float and int8 ONNX files "
            f"on MNIST's 10,000 test images, and median latency of one forward pass on {THREADS} threads, all paths interleaved in one process."
        ),
        data=data,
    )


if __name__ == "__main__":
    main()
