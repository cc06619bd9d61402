"""Attention at long sequence lengths: the fused kernel against the written-out formula.

Problem: softmax(Q K^T / sqrt(d)) V written out materialises the (n, n) score matrix per head,
so its memory grows as n^2 and, at a few thousand tokens, runs out before time does.
Idea: time both paths (`deepstrata.nn.attention`, fused = `F.scaled_dot_product_attention`)
at n = 512 ... 8192 (batch 1, 8 heads of 64, float32, one thread) and measure the extra peak
memory of the call. Each measurement runs in a fresh process: after q, k, v are allocated and a
small warm-up call, we read the current resident set (VmRSS); after the call, the process's
high-water mark (`ru_maxrss`); the difference is the call's peak extra memory. (tracemalloc
would see nothing: torch allocates outside Python's allocator.) Each process also gets a
memory budget (RLIMIT_AS = its address space after warm-up + 3 GiB): a path that needs more
fails with an allocation error, which the table reports instead of a number.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit  # noqa: E402

LENGTHS = [512, 1024, 2048, 4096, 8192]
HEADS, HEAD_DIM = 8, 64
BUDGET = 3 * 2**30  # bytes of extra address space each measurement may use


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def worker(n: int, path: str) -> dict:
    """One measurement in this process: {"ok", "seconds", "peak_extra_mib"} or {"ok": False, "error"}."""
    import torch

    torch.set_num_threads(1)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from deepstrata.nn.attention import scaled_dot_product_attention

    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, HEADS, n, HEAD_DIM, generator=g) for _ in range(3))
    fused = path == "fused"
    with torch.no_grad():
        scaled_dot_product_attention(q[..., :64, :], k[..., :64, :], v[..., :64, :], fused=fused)  # load kernels
        vm = _status_kib("VmSize") * 1024
        resource.setrlimit(resource.RLIMIT_AS, (vm + BUDGET, resource.RLIM_INFINITY))
        rss_before = _status_kib("VmRSS")
        times = []
        try:
            for _ in range(3 if n <= 2048 else 1):
                t0 = time.perf_counter()
                out = scaled_dot_product_attention(q, k, v, fused=fused)
                times.append(time.perf_counter() - t0)
                del out
        except (RuntimeError, MemoryError) as err:
            return {"ok": False, "error": str(err).splitlines()[0][:120]}
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return {"ok": True, "seconds": statistics.median(times), "peak_extra_mib": max(0, peak - rss_before) / 1024}


def measure(n: int, path: str) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--worker", str(n), path], capture_output=True, text=True)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        return {"ok": False, "error": f"exit {proc.returncode}: {proc.stderr.strip().splitlines()[-1][:120] if proc.stderr.strip() else ''}"}
    return json.loads(lines[-1])


def main() -> None:
    rows, results = [], {}
    for n in LENGTHS:
        for path in ("fused", "reference"):
            r = measure(n, path)
            results[(n, path)] = r
            print(f"n={n} {path}: {r}", flush=True)
        f, ref = results[(n, "fused")], results[(n, "reference")]
        scores_mib = HEADS * n * n * 4 / 2**20
        if f["ok"] and ref["ok"]:
            rows.append(
                f"| {n} | {f['seconds']:.3f} | {ref['seconds']:.3f} | {ref['seconds'] / f['seconds']:.2f}x | "
                f"{f['peak_extra_mib']:.0f} | {ref['peak_extra_mib']:.0f} | {ref['peak_extra_mib'] / max(f['peak_extra_mib'], 1):.1f}x | {scores_mib:.0f} |"
            )
        else:
            fs = f"{f['seconds']:.3f}" if f["ok"] else "failed"
            fm = f"{f['peak_extra_mib']:.0f}" if f["ok"] else "failed"
            rows.append(f"| {n} | {fs} | failed: {ref.get('error', '')} | - | {fm} | over {BUDGET / 2**30:.0f} GiB budget | - | {scores_mib:.0f} |")
    table = (
        "Batch 1, 8 heads x 64, float32, one thread, no mask. Peak extra memory = ru_maxrss after the call minus VmRSS "
        f"before it, in a fresh process per cell, each capped at {BUDGET / 2**30:.0f} GiB of extra address space.\n\n"
        "| n | fused (s) | reference (s) | time ratio ref/fused | fused peak extra (MiB) | reference peak extra (MiB) | memory ratio | one score matrix, all heads (MiB) |\n"
        "|---|---|---|---|---|---|---|---|\n" + "\n".join(rows)
    )
    figures = []
    for n in LENGTHS:
        f, ref = results[(n, "fused")], results[(n, "reference")]
        if f["ok"] and ref["ok"]:
            figures.append({"name": f"n={n} time ratio reference/fused", "value": ref["seconds"] / f["seconds"], "unit": "x", "note": f"fused {f['seconds']:.3f} s"})
            figures.append({"name": f"n={n} peak memory ratio reference/fused", "value": ref["peak_extra_mib"] / max(f["peak_extra_mib"], 1), "unit": "x", "note": f"fused {f['peak_extra_mib']:.0f} MiB, reference {ref['peak_extra_mib']:.0f} MiB"})
        elif f["ok"]:
            figures.append({"name": f"n={n} fused time", "value": f["seconds"], "unit": "s", "note": f"peak extra {f['peak_extra_mib']:.0f} MiB; the reference path failed within the {BUDGET / 2**30:.0f} GiB budget"})
    emit(
        "attention",
        ".venv/bin/python benchmarks/attention.py",
        figures,
        table=table,
        description="Fused scaled-dot-product attention (F.scaled_dot_product_attention) vs the written-out reference path, CPU.",
    )


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--worker":
        print(json.dumps(worker(int(sys.argv[2]), sys.argv[3])))
    else:
        main()
