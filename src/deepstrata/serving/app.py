"""The HTTP app: the Open Inference Protocol's endpoints over the served models.

Problem: the protocol's routes (health, server and model metadata, readiness, infer), the
limits, authentication, metrics and errors must hold for every route alike, and a handler must
never answer 500 for a client's mistake.
Idea: one FastAPI app made by `create_app` from `ServedModel`s. A middleware authenticates
(every route but `/v2/health/*` when a token is set), refuses oversized bodies from their
Content-Length, times the request, counts it in the metrics and writes the access-log line.
Infer reads the body (bounded), decodes it against the model's signature (`protocol.py`, 400 on
any error), queues it in the model's batcher (503 when full), waits at most `timeout_s` (504),
and encodes the outputs as the request asked. Errors are `{"error": "..."}` as the protocol says.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from deepstrata.serving.backends import Backend
from deepstrata.serving.batcher import DynamicBatcher, QueueFull
from deepstrata.serving.limits import Limits, authorized, read_body
from deepstrata.serving.metrics import ACCESS_LOG, ServerMetrics
from deepstrata.serving.protocol import HEADER_LENGTH, ProtocolError, decode_request, encode_response, split_body, tensor_metadata

VERSION = "1"
EXTENSIONS = ["binary_tensor_data"]


@dataclass
class ServedModel:
    """One run behind the server: its name, backend and (once started) batcher."""

    name: str
    backend: Backend
    run_dir: str = ""
    batcher: DynamicBatcher | None = None
    predictor: Any = None  # the run's Predictor, for /predict; loaded on first use
    extra: dict[str, Any] = field(default_factory=dict)


def error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def create_app(models: list[ServedModel], *, limits: Limits | None = None, token: str | None = None) -> FastAPI:
    limits = limits or Limits()
    table = {m.name: m for m in models}
    if len(table) != len(models):
        raise ValueError(f"two served models share a name: {[m.name for m in models]}; give each run its own --name")
    metrics = ServerMetrics()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        for m in models:
            gauge = metrics.queue_depth.labels(model=m.name)
            m.batcher = DynamicBatcher(
                m.backend,
                max_batch_size=limits.max_batch_size,
                max_queue_delay_ms=limits.max_queue_delay_ms,
                max_queue=limits.max_queue,
                on_batch=lambda rows, n, name=m.name: (metrics.batch_size.labels(model=name).observe(rows), metrics.batch_requests.labels(model=name).observe(n)),
                on_depth=gauge.set,
            )
            await m.batcher.start()
        app.state.ready = True
        try:
            yield
        finally:
            app.state.ready = False
            for m in models:
                if m.batcher is not None:
                    await m.batcher.stop()

    app = FastAPI(title="deepstrata serve", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.ready = False
    app.state.draining = False
    app.state.metrics = metrics
    app.state.models = table
    app.state.limits = limits

    @app.middleware("http")
    async def guard(request: Request, call_next: Any) -> Response:
        start = time.perf_counter()
        path = request.url.path
        model = _model_of(path, table)
        if not path.startswith("/v2/health/") and not authorized(request.headers.get("authorization"), token):
            response: Response = error(401, "missing or wrong bearer token: send Authorization: Bearer <token>", {"WWW-Authenticate": "Bearer"})
        else:
            length = request.headers.get("content-length")
            if length is not None and length.isdigit() and int(length) > limits.max_body_bytes:
                response = error(413, f"the body is {length} bytes; this server takes at most {limits.max_body_bytes} (--max-body-mb)")
            else:
                response = await call_next(request)
        seconds = time.perf_counter() - start
        metrics.observe(model, response.status_code, seconds)
        client = request.client.host if request.client else "-"
        ACCESS_LOG.info('%s "%s %s" %d %.2fms%s', client, request.method, path, response.status_code, seconds * 1000, f" model={model}" if model else "")
        return response

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error(exc.status_code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error(400, "; ".join(str(e.get("msg", e)) for e in exc.errors())[:500])

    @app.get("/v2/health/live")
    async def live() -> dict[str, bool]:
        return {"live": True}

    @app.get("/v2/health/ready")
    async def ready() -> Response:
        ok = bool(app.state.ready) and not app.state.draining
        return JSONResponse({"ready": ok}, status_code=200 if ok else 503)

    @app.get("/v2")
    async def server_metadata() -> dict[str, Any]:
        from deepstrata import __version__

        return {"name": "deepstrata", "version": __version__, "extensions": EXTENSIONS}

    def lookup(name: str, version: str | None) -> ServedModel | JSONResponse:
        served = table.get(name)
        if served is None:
            return error(404, f"unknown model '{name[:80]}'; this server serves: {', '.join(table)}")
        if version is not None and version != VERSION:
            return error(404, f"model '{name}' has only version {VERSION}, not '{version[:40]}'")
        return served

    @app.get("/v2/models/{name}")
    @app.get("/v2/models/{name}/versions/{version}")
    async def model_metadata(name: str, version: str | None = None) -> Any:
        served = lookup(name, version)
        if isinstance(served, JSONResponse):
            return served
        sig = served.backend.signature
        return {"name": name, "versions": [VERSION], "platform": served.backend.platform, "inputs": tensor_metadata(sig.inputs), "outputs": tensor_metadata(sig.outputs)}

    @app.get("/v2/models/{name}/ready")
    @app.get("/v2/models/{name}/versions/{version}/ready")
    async def model_ready(name: str, version: str | None = None) -> Any:
        served = lookup(name, version)
        if isinstance(served, JSONResponse):
            return served
        ok = served.batcher is not None and not app.state.draining
        return JSONResponse({"name": name, "ready": ok}, status_code=200 if ok else 503)

    @app.post("/v2/models/{name}/infer")
    @app.post("/v2/models/{name}/versions/{version}/infer")
    async def infer(name: str, request: Request, version: str | None = None) -> Response:
        served = lookup(name, version)
        if isinstance(served, JSONResponse):
            return served
        try:
            body = await read_body(request.headers.get("content-length"), request.stream(), limits.max_body_bytes)
            header, binary = split_body(body, request.headers.get(HEADER_LENGTH))
            sig = served.backend.signature
            decoded = decode_request(header, binary, sig, max_rows=limits.max_rows)
        except ProtocolError as err:
            return error(err.status, str(err))
        outputs = await _run(served, decoded.inputs, decoded.rows)
        if isinstance(outputs, Response):
            return outputs
        named = dict(zip([t.name for t in sig.outputs], outputs))
        try:
            content, headers = encode_response(name, VERSION, decoded, named, sig)
        except ValueError:  # NaN or infinity in the outputs: JSON cannot carry them
            return error(400, "the model's outputs are not finite for this input (far outside what it was trained on?)")
        return Response(content, headers=headers)

    async def _run(served: ServedModel, inputs: list[np.ndarray], rows: int) -> list[np.ndarray] | Response:
        assert served.batcher is not None
        if app.state.draining:
            return error(503, "the server is shutting down")
        try:
            future = served.batcher.submit(inputs, rows)
        except QueueFull as err:
            return error(503, f"server busy: {err}; retry later", {"Retry-After": "1"})
        try:
            return await asyncio.wait_for(asyncio.shield(future), limits.timeout_s)
        except asyncio.TimeoutError:
            future.cancel()
            return error(504, f"no answer within {limits.timeout_s:g} s (--timeout-s)")
        except Exception as err:  # the model itself failed: a server fault, said plainly
            return error(500, f"the model failed on this batch: {type(err).__name__}: {str(err)[:300]}")

    @app.get("/metrics")
    async def prometheus() -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app


def _model_of(path: str, table: dict[str, ServedModel]) -> str:
    """The served model a path names (for metrics and the access log); "" for other routes."""
    parts = path.split("/")
    if len(parts) >= 4 and parts[1] == "v2" and parts[2] == "models" and parts[3] in table:
        return parts[3]
    return ""
