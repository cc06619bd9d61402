"""`strata serve`: the protocol over HTTP with real clients, batching under concurrency, limits, auth, metrics.

Every server here listens on 127.0.0.1 at a free port and is stopped by the test; request
counts and durations are bounded.
"""

from __future__ import annotations

import concurrent.futures
import json
import logging
import random
import socket
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch

from deepstrata import api
from deepstrata.run.run import Run
from deepstrata.serving.app import ServedModel
from deepstrata.serving.limits import Limits
from deepstrata.serving.server import open_models, serve_in_thread

pytestmark = [pytest.mark.xdist_group("serving"), pytest.mark.e2e]

RECIPE = {
    "name": "serve_cnn",
    "seed": 0,
    "data": {"name": "digits", "batch_size": 32},
    "model": {"name": "small_cnn", "widths": [8, 16]},
    "trainer": {"max_epochs": 1, "max_steps": 5, "progress": "off", "num_threads": 1},
}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return api.train({**RECIPE, "output_dir": str(tmp_path_factory.mktemp("serve") / "runs")}).run_dir


@pytest.fixture(scope="module")
def digits(run_dir: Path) -> np.ndarray:
    """Real test digits as model inputs, (N, 1, 8, 8) float32."""
    return next(iter(Run.open(run_dir).loader("test")))[0].numpy()


def _offline(run_dir: Path, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return Run.open(run_dir).model().eval()(torch.from_numpy(x)).numpy()


def _infer_body(x: np.ndarray, **extra) -> dict:
    return {"inputs": [{"name": "x", "shape": list(x.shape), "datatype": "FP32", "data": x.ravel().tolist()}], **extra}


class Slow:
    """A backend that takes `seconds` per forward pass (for queue and timeout tests)."""

    def __init__(self, inner, seconds: float):
        self.inner, self.seconds = inner, seconds
        self.platform, self.signature = inner.platform, inner.signature

    def infer(self, inputs):
        time.sleep(self.seconds)
        return self.inner.infer(inputs)


def test_metadata_health_and_unknown_names(run_dir: Path) -> None:
    with serve_in_thread(open_models([run_dir])) as url:
        assert httpx.get(f"{url}/v2/health/live").json() == {"live": True}
        assert httpx.get(f"{url}/v2/health/ready").json() == {"ready": True}
        assert httpx.get(f"{url}/v2").json()["extensions"] == ["binary_tensor_data"]
        meta = httpx.get(f"{url}/v2/models/serve_cnn").json()
        assert meta == httpx.get(f"{url}/v2/models/serve_cnn/versions/1").json()
        assert meta["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, 1, 8, 8]}] and meta["outputs"][0]["shape"] == [-1, 10]
        assert httpx.get(f"{url}/v2/models/serve_cnn/ready").json() == {"name": "serve_cnn", "ready": True}
        for path in ("/v2/models/nope", "/v2/models/serve_cnn/versions/2", "/v2/models/nope/ready"):
            reply = httpx.get(url + path)
            assert reply.status_code == 404 and "error" in reply.json()
        reply = httpx.post(f"{url}/v2/models/nope/infer", json={})
        assert reply.status_code == 404 and "serve_cnn" in reply.json()["error"]
        assert httpx.get(f"{url}/no/such/route").json() == {"error": "Not Found"}


def test_tritonclient_binary_and_json_and_httpx_agree_with_the_offline_model(run_dir: Path, digits: np.ndarray) -> None:
    import tritonclient.http as triton

    x = digits[:5]
    expected = _offline(run_dir, x)
    with serve_in_thread(open_models([run_dir], names=["digits"])) as url:
        client = triton.InferenceServerClient(url.removeprefix("http://"))
        assert client.is_server_live() and client.is_server_ready() and client.is_model_ready("digits")
        assert client.get_model_metadata("digits")["platform"] == "pytorch_torch"
        for binary in (True, False):
            given = triton.InferInput("x", list(x.shape), "FP32")
            given.set_data_from_numpy(x, binary_data=binary)
            result = client.infer("digits", [given], outputs=[triton.InferRequestedOutput("output", binary_data=binary)], request_id="r7")
            np.testing.assert_allclose(result.as_numpy("output"), expected, atol=1e-5)
            assert result.get_response()["id"] == "r7"
        reply = httpx.post(f"{url}/v2/models/digits/versions/1/infer", json=_infer_body(x))
        assert reply.status_code == 200
        out = reply.json()["outputs"][0]
        np.testing.assert_allclose(np.array(out["data"], np.float32).reshape(out["shape"]), expected, atol=1e-5)


def test_concurrent_requests_are_batched_and_none_is_lost_or_misrouted(run_dir: Path, digits: np.ndarray) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    expected = _offline(run_dir, digits)
    limits = Limits(max_batch_size=32, max_queue_delay_ms=5)
    jobs = [(i % len(digits), 1 + (i % 3)) for i in range(240)]  # (first row, rows): 240 requests of 1-3 rows
    with serve_in_thread(open_models([run_dir]), limits=limits) as url, httpx.Client() as client:

        def ask(job: tuple[int, int]) -> bool:
            start, n = job
            rows = [(start + k) % len(digits) for k in range(n)]
            reply = client.post(f"{url}/v2/models/serve_cnn/infer", json=_infer_body(digits[rows], id=f"{start}-{n}"))
            body = reply.json()
            got = np.array(body["outputs"][0]["data"], np.float32).reshape(body["outputs"][0]["shape"])
            return reply.status_code == 200 and body["id"] == f"{start}-{n}" and np.allclose(got, expected[rows], atol=1e-5)

        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(ask, jobs))
        families = {f.name: f for f in text_string_to_metric_families(httpx.get(f"{url}/metrics").text)}
    assert all(answers) and len(answers) == 240
    passes = next(s.value for s in families["deepstrata_batch_size"].samples if s.name.endswith("_count"))
    rows = next(s.value for s in families["deepstrata_batch_size"].samples if s.name.endswith("_sum"))
    assert rows == sum(n for _, n in jobs) and passes < 240  # some passes carried several requests
    ok = [s for s in families["deepstrata_requests"].samples if s.name == "deepstrata_requests_total" and s.labels == {"model": "serve_cnn", "status": "200"}]
    assert ok and ok[0].value == 240
    latency = [s for s in families["deepstrata_request_duration_seconds"].samples if s.name.endswith("_count")]
    assert latency[0].value == 240 and "deepstrata_queue_depth" in families


def test_a_token_guards_every_route_but_health(run_dir: Path) -> None:
    with serve_in_thread(open_models([run_dir]), token="s3cret") as url:
        assert httpx.get(f"{url}/v2/health/ready").status_code == 200
        for path in ("/v2", "/v2/models/serve_cnn", "/metrics"):
            assert httpx.get(url + path).status_code == 401
            assert httpx.get(url + path, headers={"Authorization": "Bearer wrong"}).status_code == 401
            assert httpx.get(url + path, headers={"Authorization": "Bearer s3cret"}).status_code == 200
        reply = httpx.post(f"{url}/v2/models/serve_cnn/infer", json={})
        assert reply.status_code == 401 and reply.headers["www-authenticate"] == "Bearer" and "bearer token" in reply.json()["error"]


def test_oversized_bodies_are_refused_before_they_are_read(run_dir: Path) -> None:
    limits = Limits(max_body_bytes=4096)
    with serve_in_thread(open_models([run_dir]), limits=limits) as url:
        host, port = url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=5) as conn:
            # Headers only: a server that waited for the 1 GB body would never answer.
            conn.sendall(b"POST /v2/models/serve_cnn/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000000000\r\n\r\n")
            status_line = conn.recv(4096).split(b"\r\n", 1)[0]
        assert b" 413 " in status_line

        def chunks():
            for _ in range(10):
                yield b" " * 1024

        reply = httpx.post(f"{url}/v2/models/serve_cnn/infer", content=chunks())  # no Content-Length: chunked
        assert reply.status_code == 413 and "at most 4096" in reply.json()["error"]


def test_a_full_queue_answers_503_at_once_and_a_slow_answer_504(run_dir: Path, digits: np.ndarray) -> None:
    slow = open_models([run_dir])[0]
    limits = Limits(max_batch_size=1, max_queue=1, timeout_s=5.0)
    body = _infer_body(digits[:1])
    with serve_in_thread([ServedModel("slow", Slow(slow.backend, 0.4))], limits=limits) as url, httpx.Client(timeout=10) as client:

        def ask(_: int) -> tuple[int, float]:
            start = time.perf_counter()
            status = client.post(f"{url}/v2/models/slow/infer", json=body).status_code
            return status, time.perf_counter() - start

        with concurrent.futures.ThreadPoolExecutor(6) as pool:
            results = list(pool.map(ask, range(6)))
    statuses = sorted(s for s, _ in results)
    # one computing plus one queued (max_queue=1) can be admitted; the rest arrive while both are taken
    assert 1 <= statuses.count(200) <= 2 and statuses.count(503) >= 4 and set(statuses) <= {200, 503}
    assert max(t for s, t in results if s == 503) < 0.35  # refused at once, not after waiting its turn
    with serve_in_thread([ServedModel("slow", Slow(slow.backend, 1.0))], limits=Limits(timeout_s=0.2)) as url:
        reply = httpx.post(f"{url}/v2/models/slow/infer", json=body, timeout=10)
        assert reply.status_code == 504 and "0.2 s" in reply.json()["error"]


def test_malformed_bodies_never_give_500_and_the_server_stays_up(run_dir: Path, digits: np.ndarray) -> None:
    rng = random.Random(0)
    good = json.dumps(_infer_body(digits[:2])).encode()
    bodies = [b"", b"{", b"[]", b"null", b'{"inputs": null}', b'{"inputs": [NaN]}', b"\xff\xfe", good[: len(good) // 2]]
    for _ in range(150):
        raw = bytearray(good)
        for _ in range(rng.randint(1, 6)):
            raw[rng.randrange(len(raw))] = rng.randrange(256)
        bodies.append(bytes(raw))
    lying = json.dumps({"inputs": [{"name": "x", "shape": [2, 1, 8, 8], "datatype": "FP32", "parameters": {"binary_data_size": 512}}]}).encode()
    statuses = []
    with serve_in_thread(open_models([run_dir])) as url, httpx.Client() as client:
        for body in bodies:
            statuses.append(client.post(f"{url}/v2/models/serve_cnn/infer", content=body).status_code)
        statuses.append(client.post(f"{url}/v2/models/serve_cnn/infer", content=lying + b"\0" * 10, headers={"Inference-Header-Content-Length": str(len(lying))}).status_code)
        assert client.post(f"{url}/v2/models/serve_cnn/infer", content=good).status_code == 200  # still serving
    assert 500 not in statuses and set(statuses) <= {200, 400}
    assert statuses.count(400) >= len(bodies) - 20  # almost every mutation breaks something


def test_one_access_log_line_per_request(run_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="deepstrata.serving.access")
    with serve_in_thread(open_models([run_dir])) as url:
        caplog.clear()
        httpx.get(f"{url}/v2/models/serve_cnn")
        httpx.post(f"{url}/v2/models/serve_cnn/infer", content=b"{")
    lines = [r.getMessage() for r in caplog.records if r.name == "deepstrata.serving.access"]
    assert len(lines) == 2
    assert '"GET /v2/models/serve_cnn" 200' in lines[0] and lines[0].endswith("model=serve_cnn")
    assert '"POST /v2/models/serve_cnn/infer" 400' in lines[1]


def test_the_onnxruntime_backend_serves_the_export_and_agrees_with_torch(run_dir: Path, digits: np.ndarray) -> None:
    models = open_models([run_dir], names=["ort"], backend="onnxruntime")  # exports first: the run has no ONNX file yet
    assert models[0].backend.platform == "onnxruntime_onnx" and (Path(models[0].backend.path)).is_file()
    with serve_in_thread(models) as url:
        reply = httpx.post(f"{url}/v2/models/ort/infer", json=_infer_body(digits[:7]))
        out = reply.json()["outputs"][0]
        np.testing.assert_allclose(np.array(out["data"], np.float32).reshape(out["shape"]), _offline(run_dir, digits[:7]), atol=1e-4)
        assert httpx.get(f"{url}/v2/models/ort").json()["platform"] == "onnxruntime_onnx"


def test_names_default_to_the_recipe_and_must_be_unique(run_dir: Path) -> None:
    from deepstrata.errors import UserError

    assert [m.name for m in open_models([run_dir])] == ["serve_cnn"]
    with pytest.raises(UserError, match="name them with --name"):
        open_models([run_dir, run_dir])
    with pytest.raises(UserError, match="one --name per run"):
        open_models([run_dir, run_dir], names=["a"])
    assert [m.name for m in open_models([run_dir, run_dir], names=["a", "b"])] == ["a", "b"]


def _digit_png(path: Path, index: int = 0) -> Path:
    """A scikit-learn digit drawn as a 64x64 PNG, dark ink on white, as a user's scan might be."""
    from PIL import Image
    from sklearn.datasets import load_digits

    image = load_digits().images[index]
    pixels = (255 - image / 16.0 * 255).astype(np.uint8)
    Image.fromarray(pixels).resize((64, 64), Image.NEAREST).save(path)
    return path


def test_predict_reads_images_and_raw_arrays_through_the_runs_preprocessing(run_dir: Path, tmp_path: Path) -> None:
    from sklearn.datasets import load_digits

    predictor = Run.open(run_dir).predictor()
    png = _digit_png(tmp_path / "digit.png")
    expected = predictor.predict_files([png], top_k=3)[0]
    raw = load_digits().images[:2]
    with serve_in_thread(open_models([run_dir])) as url:
        index = httpx.post(f"{url}/v2/repository/index", json={}).json()
        assert index == [{"name": "serve_cnn", "version": "1", "state": "READY"}]
        reply = httpx.post(f"{url}/v2/models/serve_cnn/predict?top_k=3", content=png.read_bytes(), headers={"Content-Type": "image/png"})
        row = reply.json()["predictions"][0]
        assert reply.status_code == 200 and row["label"] == expected["label"] and [t["class_name"] for t in row["top_k"]] == [t["class_name"] for t in expected["top_k"]]
        assert row["probability"] == pytest.approx(expected["probability"], abs=1e-6)
        rows = httpx.post(f"{url}/v2/models/serve_cnn/predict", json={"inputs": raw.tolist()}).json()["predictions"]
        assert [r["label"] for r in rows] == [r["label"] for r in predictor.predict(raw)]
        for body, headers, reason in [
            (b"not an image", {"Content-Type": "image/png"}, "cannot read the image"),
            (b'{"texts": ["3 March"]}', {"Content-Type": "application/json"}, "reads arrays, not text"),
            (b'{"inputs": [[1, 2], [3]]}', {"Content-Type": "application/json"}, "nested) list of numbers"),
            (b'{"other": 1}', {"Content-Type": "application/json"}, '"inputs": raw arrays'),
        ]:
            reply = httpx.post(f"{url}/v2/models/serve_cnn/predict", content=body, headers=headers)
            assert reply.status_code == 400 and reason in reply.json()["error"], reply.text
        assert httpx.post(f"{url}/v2/models/serve_cnn/predict?top_k=0", content=png.read_bytes(), headers={"Content-Type": "image/png"}).status_code == 400
        page = httpx.get(f"{url}/")
        assert page.status_code == 200 and "deepstrata playground" in page.text


def test_the_listening_socket_lets_asyncio_turn_nagle_off() -> None:
    """asyncio sets TCP_NODELAY only on sockets created with IPPROTO_TCP; otherwise every response waits ~40 ms for a delayed ACK."""
    from deepstrata.serving.server import bind

    sock = bind("127.0.0.1", 0)
    try:
        assert sock.proto == socket.IPPROTO_TCP
    finally:
        sock.close()
