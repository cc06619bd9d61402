"""`strata serve` under load, on loopback: throughput and latency, batching, backends, overload, correctness, hostile input.

Two runs are served: the MNIST ResNet (recipes/mnist_resnet.yaml) and LeNet-5
(recipes/mnist_lenet.yaml), each trained for one epoch here (serving cost does not depend on
how long the weights trained; the offline predictions the responses are checked against come
from the same weights). Each configuration is a fresh `strata serve` subprocess on 127.0.0.1
with one torch/ONNX Runtime thread; the load generator runs in this process on the other core.

The load generator is a minimal asyncio HTTP/1.1 client over keep-alive connections sending
pre-encoded Open Inference Protocol requests with the binary tensor extension (what
tritonclient sends): one 1x1x28x28 MNIST test image per request, so the client's own cost per
request stays far below the server's. Closed loop: `c` connections, each sending its next
request when the previous answer arrived, for a fixed number of requests per level.

Measured per configuration and concurrency: throughput, P50/P99 client latency, the server's CPU
use (cores, from /proc), and the share of a request's server time spent in the forward pass
(the server's own histograms) rather than in HTTP, decoding, queueing and encoding.

Then, on the ResNet with dynamic batching: overload (open loop at 10x the measured sustainable
rate for 30 s: statuses, 503 latency, admitted latency, server memory), correctness under load
(20,000 requests, each answer checked against the offline prediction for its image), and 1,000
generated malformed bodies (statuses, server alive, memory).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("DEEPSTRATA_DATA", str(REPO.parent / "shared" / "data"))
STRATA = str(Path(sys.executable).with_name("strata"))
COMMAND = ".venv/bin/python benchmarks/run_all.py --only serving"
LEVELS = (1, 8, 32, 128)
REQUESTS = {1: 400, 8: 1600, 32: 3200, 128: 3200}
OVERLOAD_S = 30.0
CORRECTNESS_REQUESTS = 20_000
HOSTILE = 1_000
CLK = os.sysconf("SC_CLK_TCK")


# ------------------------------------------------------------------ the runs


def train(recipe: str, out: Path) -> Path:
    from deepstrata import api

    return api.train(REPO / "recipes" / recipe, overrides=["trainer.max_epochs=1", "trainer.progress=off", f"output_dir={out}"]).run_dir


def offline(run_dir: Path, x: np.ndarray) -> np.ndarray:
    import torch

    from deepstrata.run.run import Run

    with torch.no_grad():
        return Run.open(run_dir).model().eval()(torch.from_numpy(x)).numpy()


# ------------------------------------------------------------------ the server


class Server:
    def __init__(self, run_dir: Path, *, backend: str, batch: int, delay_ms: float, queue: int = 256, name: str = "m"):
        cmd = [STRATA, "serve", str(run_dir), "--port", "0", "--backend", backend, "--name", name, "--max-batch-size", str(batch),
               "--max-queue-delay-ms", str(delay_ms), "--max-queue", str(queue), "--no-access-log", "--timeout-s", "30"]
        env = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
        line = self.proc.stdout.readline()
        match = re.search(r"http://127\.0\.0\.1:(\d+)/v2", line)
        if not match:
            raise SystemExit(f"strata serve did not start: {line!r} {self.proc.stderr.read()[-2000:]}")
        self.port = int(match.group(1))
        self.name = name
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                status, _, _ = asyncio.run(one_request(self.port, b"GET /v2/health/ready HTTP/1.1\r\nHost: x\r\n\r\n"))
                if status == 200:
                    break
            except OSError:
                time.sleep(0.2)

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def metrics(self) -> dict[str, float]:
        _, _, body = asyncio.run(one_request(self.port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"))
        out: dict[str, float] = {}
        for line in body.decode().splitlines():
            if line and not line.startswith("#"):
                key, value = line.rsplit(" ", 1)
                out[key] = float(value)
        return out

    def stop(self) -> int:
        self.proc.terminate()
        try:
            return self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return -9


# ------------------------------------------------------------------ the client


def infer_request(model: str, image: np.ndarray, rid: str) -> bytes:
    """One pre-encoded infer request: JSON header, then the image as little-endian FP32 bytes."""
    blob = image.astype("<f4").tobytes()
    header = json.dumps({"id": rid, "inputs": [{"name": "x", "shape": [1, *image.shape], "datatype": "FP32", "parameters": {"binary_data_size": len(blob)}}],
                         "outputs": [{"name": "output", "parameters": {"binary_data": True}}]}).encode()
    body = header + blob
    head = (f"POST /v2/models/{model}/infer HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/octet-stream\r\n"
            f"Inference-Header-Content-Length: {len(header)}\r\nContent-Length: {len(body)}\r\n\r\n").encode()
    return head + body


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    status_line = await reader.readline()
    if not status_line:
        raise ConnectionError("closed")
    status = int(status_line.split()[1])
    headers = {}
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b"\n", b""):
            break
        k, v = line.decode().split(":", 1)
        headers[k.strip().lower()] = v.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return status, headers, body


async def one_request(port: int, raw: bytes) -> tuple[int, dict[str, str], bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw)
    await writer.drain()
    reply = await read_response(reader)
    writer.close()
    return reply


def decode_output(headers: dict[str, str], body: bytes) -> tuple[str, np.ndarray]:
    n = int(headers["inference-header-content-length"])
    meta = json.loads(body[:n])
    return meta["id"], np.frombuffer(body[n:], dtype="<f4").reshape(meta["outputs"][0]["shape"])


async def closed_loop(port: int, requests: list[bytes], concurrency: int) -> list[tuple[int, float, dict, bytes]]:
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for r in requests:
        queue.put_nowait(r)
    results: list[tuple[int, float, dict, bytes]] = []

    async def worker() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while not queue.empty():
            raw = queue.get_nowait()
            start = time.perf_counter()
            writer.write(raw)
            await writer.drain()
            status, headers, body = await read_response(reader)
            results.append((status, time.perf_counter() - start, headers, body))
        writer.close()

    await asyncio.gather(*[worker() for _ in range(concurrency)])
    return results


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def load_level(server: Server, requests: list[bytes], concurrency: int) -> dict[str, float]:
    before_m, before_cpu, start = server.metrics(), server.cpu_seconds(), time.perf_counter()
    results = asyncio.run(closed_loop(server.port, requests, concurrency))
    wall = time.perf_counter() - start
    cpu = server.cpu_seconds() - before_cpu
    after_m = server.metrics()
    lat = [t for s, t, _, _ in results if s == 200]

    def delta(key: str) -> float:
        return after_m.get(key, 0.0) - before_m.get(key, 0.0)

    name = server.name
    infer_s = delta(f'deepstrata_inference_seconds_sum{{model="{name}"}}')
    served_s = delta(f'deepstrata_request_duration_seconds_sum{{model="{name}"}}')
    passes = delta(f'deepstrata_batch_size_count{{model="{name}"}}')
    rows = delta(f'deepstrata_batch_size_sum{{model="{name}"}}')
    return {
        "throughput": len(lat) / wall,
        "p50_ms": percentile(lat, 50) * 1000,
        "p99_ms": percentile(lat, 99) * 1000,
        "errors": len(results) - len(lat),
        "server_cores": cpu / wall,
        "mean_batch": rows / passes if passes else float("nan"),
        # the forward passes' time (each pass shared by its requests) as a share of the requests' server-side time
        "model_share": infer_s / served_s if served_s else float("nan"),
        "outside_ms": (served_s - infer_s) / len(lat) * 1000 if lat else float("nan"),
    }


# ------------------------------------------------------------------ overload, correctness, hostile input


async def open_loop(port: int, request: bytes, rate: float, seconds: float, connections: int) -> dict[str, object]:
    """Send at `rate` per second for `seconds`, each on a free connection; a send with none free is counted, not queued."""
    free: asyncio.Queue = asyncio.Queue()
    for _ in range(connections):
        free.put_nowait(await asyncio.open_connection("127.0.0.1", port))
    outcomes: list[tuple[int, float]] = []
    unsent = 0
    tasks = []

    async def send(conn) -> None:
        reader, writer = conn
        start = time.perf_counter()
        try:
            writer.write(request)
            await writer.drain()
            status, _, _ = await read_response(reader)
            outcomes.append((status, time.perf_counter() - start))
            free.put_nowait(conn)
        except (ConnectionError, asyncio.IncompleteReadError):
            outcomes.append((-1, time.perf_counter() - start))
            free.put_nowait(await asyncio.open_connection("127.0.0.1", port))

    t0 = time.perf_counter()
    n = 0
    while True:
        due = t0 + n / rate
        now = time.perf_counter()
        if now - t0 >= seconds:
            break
        if due > now:
            await asyncio.sleep(due - now)
        n += 1
        if free.empty():
            unsent += 1
            continue
        tasks.append(asyncio.create_task(send(free.get_nowait())))
    await asyncio.gather(*tasks)
    return {"offered": n, "unsent": unsent, "outcomes": outcomes, "seconds": time.perf_counter() - t0}


def hostile_bodies(good: bytes, header_len: int, rng: random.Random) -> list[tuple[bytes, dict[str, str]]]:
    """1,000 malformed requests: bad JSON, lying sizes, huge shapes, NaN, wrong dtypes, random bytes."""
    out: list[tuple[bytes, dict[str, str]]] = []
    header = json.loads(good[:header_len])
    blob = good[header_len:]

    def with_header(h: dict, data: bytes = blob) -> tuple[bytes, dict[str, str]]:
        text = json.dumps(h).encode()
        return text + data, {"Inference-Header-Content-Length": str(len(text))}

    for i in range(HOSTILE):
        kind = i % 8
        h = json.loads(json.dumps(header))
        if kind == 0:  # random byte flips in the JSON header
            raw = bytearray(good)
            for _ in range(rng.randint(1, 8)):
                raw[rng.randrange(header_len)] = rng.randrange(256)
            out.append((bytes(raw), {"Inference-Header-Content-Length": str(header_len)}))
        elif kind == 1:  # a binary_data_size that lies
            h["inputs"][0]["parameters"]["binary_data_size"] = rng.choice([0, 1, len(blob) - 4, len(blob) + 4, 10**12, -5])
            out.append(with_header(h))
        elif kind == 2:  # huge or odd shapes
            h["inputs"][0]["shape"] = rng.choice([[10**9, 1, 28, 28], [1, 1, 28, 28, 1], [], [1, 1, 28, -28], [2**63, 1, 28, 28]])
            out.append(with_header(h))
        elif kind == 3:  # NaN and infinity in the binary data
            arr = np.frombuffer(blob, dtype="<f4").copy()
            arr[rng.randrange(arr.size)] = rng.choice([np.nan, np.inf, -np.inf])
            out.append(with_header(h, arr.tobytes()))
        elif kind == 4:  # wrong datatypes
            h["inputs"][0]["datatype"] = rng.choice(["INT64", "FP64", "BYTES", "fp32", 7, None])
            out.append(with_header(h))
        elif kind == 5:  # JSON data of the wrong kind or length
            del h["inputs"][0]["parameters"]
            h["inputs"][0]["data"] = rng.choice([[0.5] * 783, ["x"] * 784, [[0.5] * 28] * 29, {"a": 1}, [None] * 784])
            out.append((json.dumps(h).encode(), {}))
        elif kind == 6:  # truncated bodies and lying header lengths
            cut = rng.randrange(1, len(good))
            out.append((good[:cut], {"Inference-Header-Content-Length": str(rng.choice([header_len, cut + 10, 0, -1]))}))
        else:  # random bytes
            out.append((bytes(rng.randrange(256) for _ in range(rng.randint(0, 400))), {}))
    return out


async def send_all(port: int, model: str, bodies: list[tuple[bytes, dict[str, str]]]) -> list[int]:
    statuses = []
    for body, extra in bodies:
        head = f"POST /v2/models/{model}/infer HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\nConnection: close\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in extra.items()) + "\r\n"
        try:
            status, _, _ = await one_request(port, head.encode() + body)
        except (ConnectionError, asyncio.IncompleteReadError):
            status = -1
        statuses.append(status)
    return statuses


# ------------------------------------------------------------------ main


def main() -> None:
    import tempfile

    work = Path(tempfile.mkdtemp(prefix="serving-bench-"))
    print("training one epoch of each recipe", file=sys.stderr, flush=True)
    runs = {"ResNet": train("mnist_resnet.yaml", work), "LeNet-5": train("mnist_lenet.yaml", work)}
    from deepstrata.run.run import Run

    test_x = next(iter(Run.open(runs["ResNet"]).loader("test")))[0].numpy()  # preprocessed MNIST test images
    images = np.concatenate([test_x] * 4)[:512]
    expected = {k: offline(v, images).argmax(1) for k, v in runs.items()}
    rows, data, figures = [], {}, []
    configs = [(b, backend, batched) for b in ("ResNet", "LeNet-5") for backend in ("torch", "onnxruntime") for batched in (False, True)]
    for model, backend, batched in configs:
        server = Server(runs[model], backend=backend, batch=32 if batched else 1, delay_ms=2.0)
        for c in LEVELS:
            reqs = [infer_request("m", images[i % len(images)], str(i)) for i in range(REQUESTS[c])]
            asyncio.run(closed_loop(server.port, reqs[:64], min(c, 8)))  # warm-up
            r = load_level(server, reqs, c)
            key = f"{model} {backend} {'batched' if batched else 'unbatched'} c={c}"
            data[key] = r
            print(key, {k: round(v, 3) for k, v in r.items()}, file=sys.stderr, flush=True)
            rows.append(f"| {model} | {backend} | {'32, 2 ms' if batched else 'off'} | {c} | {r['throughput']:.0f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['mean_batch']:.1f} | {r['server_cores']:.2f} | {100 * r['model_share']:.0f}% | {r['outside_ms']:.2f} | {int(r['errors'])} |")
        server.stop()
    t = lambda model, backend, batched, c: data[f"{model} {backend} {'batched' if batched else 'unbatched'} c={c}"]["throughput"]  # noqa: E731
    batching = t("ResNet", "torch", True, 32) / t("ResNet", "torch", False, 32)
    lenet_batching = t("LeNet-5", "torch", True, 32) / t("LeNet-5", "torch", False, 32)
    ort = {m: t(m, "onnxruntime", False, 1) / t(m, "torch", False, 1) for m in runs}
    figures += [
        {"name": "ResNet: dynamic batching / unbatched throughput at concurrency 32 (torch)", "value": round(batching, 2), "unit": "x", "note": "goal >= 3x"},
        {"name": "LeNet-5: dynamic batching / unbatched throughput at concurrency 32 (torch)", "value": round(lenet_batching, 2), "unit": "x", "note": "reported; see where the time goes"},
        {"name": "ResNet: onnxruntime / torch throughput at batch 1 (concurrency 1, unbatched)", "value": round(ort["ResNet"], 2), "unit": "x", "note": "goal >= 1.5x"},
        {"name": "LeNet-5: onnxruntime / torch throughput at batch 1 (concurrency 1, unbatched)", "value": round(ort["LeNet-5"], 2), "unit": "x", "note": "goal >= 1.5x"},
    ]

    # Overload, correctness and hostile input: the ResNet, torch, batched, a queue of one batch.
    server = Server(runs["ResNet"], backend="torch", batch=32, delay_ms=2.0, queue=32)
    sustainable = t("ResNet", "torch", True, 32)
    rss = [server.rss_mb()]
    req = infer_request("m", images[0], "0")
    result = asyncio.run(open_loop(server.port, req, rate=10 * sustainable, seconds=OVERLOAD_S, connections=1024))
    rss.append(server.rss_mb())
    outcomes = result["outcomes"]
    busy = [lat for s, lat in outcomes if s == 503]
    ok = [lat for s, lat in outcomes if s == 200]
    other = sorted({s for s, _ in outcomes} - {200, 503})
    alive = asyncio.run(one_request(server.port, b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n"))[0] == 200
    data["overload"] = {"offered_per_s": result["offered"] / result["seconds"], "sent": len(outcomes), "unsent": result["unsent"], "ok": len(ok), "busy": len(busy), "other_statuses": other,
                        "median_503_ms": percentile(busy, 50) * 1000, "p99_200_ms": percentile(ok, 99) * 1000, "rss_mb": rss, "alive": alive}
    print("overload", data["overload"], file=sys.stderr, flush=True)

    alive = alive and server.stop() == 0
    rss_overload = rss

    # Correctness and hostile input: a server with the default queue (256), 64 connections.
    server = Server(runs["ResNet"], backend="torch", batch=32, delay_ms=2.0)
    rss = [server.rss_mb()]
    reqs = [infer_request("m", images[i % len(images)], str(i)) for i in range(CORRECTNESS_REQUESTS)]
    results = asyncio.run(closed_loop(server.port, reqs, 64))
    statuses_seen = [status for status, _, _, _ in results]
    wrong, seen = 0, set()
    for status, _, headers, body in results:
        if status == 200:
            rid, out = decode_output(headers, body)
            seen.add(rid)
            wrong += int(out.argmax(1)[0] != expected["ResNet"][int(rid) % len(images)])
    lost = CORRECTNESS_REQUESTS - len(seen)
    rss.append(server.rss_mb())
    data["correctness"] = {"requests": CORRECTNESS_REQUESTS, "answered_200": len(seen), "lost": lost, "wrong": wrong, "statuses": {str(x): statuses_seen.count(x) for x in sorted(set(statuses_seen))}}
    print("correctness", data["correctness"], file=sys.stderr, flush=True)

    header_len = int(re.search(rb"Inference-Header-Content-Length: (\d+)", req).group(1))
    good = req.split(b"\r\n\r\n", 1)[1]
    statuses = asyncio.run(send_all(server.port, "m", hostile_bodies(good, header_len, random.Random(0))))
    alive_after = asyncio.run(one_request(server.port, b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n"))[0] == 200
    rss.append(server.rss_mb())
    counts = {str(s): statuses.count(s) for s in sorted(set(statuses))}
    data["hostile"] = {"bodies": HOSTILE, "statuses": counts, "alive": alive_after, "rss_mb": rss}
    print("hostile", data["hostile"], file=sys.stderr, flush=True)
    exit_code = server.stop()

    o = data["overload"]
    figures += [
        {"name": "overload: offered rate (10x the sustainable)", "value": round(o["offered_per_s"]), "unit": "req/s", "note": f"sustainable (c=32, batched) {sustainable:.0f} req/s; {OVERLOAD_S:.0f} s"},
        {"name": "overload: rate the load generator actually sent", "value": round(o["sent"] / OVERLOAD_S), "unit": "req/s", "note": f"{o['unsent']} due sends found none of the 1,024 connections free"},
        {"name": "overload: answered 200 / 503", "value": f"{o['ok']} / {o['busy']}", "unit": "requests", "note": f"other statuses: {o['other_statuses'] or 'none'}; server alive after: {o['alive']}"},
        {"name": "overload: median 503 latency", "value": round(o["median_503_ms"], 2), "unit": "ms", "note": "goal < 5 ms"},
        {"name": "overload: P99 latency of admitted requests", "value": round(o["p99_200_ms"], 1), "unit": "ms", "note": "queue of 32 = one batch; max queue delay 2 ms"},
        {"name": "overload: server memory (RSS) before / after", "value": " / ".join(f"{m:.0f}" for m in rss_overload), "unit": "MiB", "note": f"queue of 32; exit code after SIGTERM 0: {alive}"},
        {"name": "correctness under load: lost / wrong of 20,000", "value": f"{data['correctness']['lost']} / {data['correctness']['wrong']}", "unit": "requests", "note": f"64 connections; each answer's id and argmax against the offline prediction for its image; statuses {data['correctness']['statuses']}"},
        {"name": "server memory (RSS) before / after 20,000 / after hostile", "value": " / ".join(f"{m:.0f}" for m in rss), "unit": "MiB", "note": ""},
        {"name": "hostile bodies: statuses", "value": json.dumps(counts), "unit": "", "note": f"{HOSTILE} bodies; 500s: {counts.get('500', 0)}; alive after: {alive_after}; exit code after SIGTERM {exit_code}"},
    ]
    table = "\n".join([
        "| model | backend | dynamic batching | concurrency | req/s | P50 ms | P99 ms | mean batch | server cores | forward-pass share of server time | server ms per request outside the forward pass | errors |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
        *rows,
    ])
    emit("serving", COMMAND, figures, table=table, data=data,
         description="strata serve on 127.0.0.1: one MNIST image per request (binary tensor extension), closed-loop keep-alive connections; server with one thread, load generator in another process on the second core.")


if __name__ == "__main__":
    main()
