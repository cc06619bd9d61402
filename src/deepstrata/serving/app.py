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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from deepstrata.errors import UserError
from deepstrata.serving.backends import Backend
from deepstrata.serving.batcher import DynamicBatcher, QueueFull
from deepstrata.serving.limits import Limits, authorized, read_body
from deepstrata.serving.metrics import ACCESS_LOG, ServerMetrics
from deepstrata.serving.protocol import HEADER_LENGTH, ProtocolError, decode_request, encode_response, no_constant, split_body, tensor_metadata

VERSION = "1"
PUBLIC = frozenset({"/", "/favicon.ico"})  # the playground page: static, no data; its requests carry the token
PLAYGROUND = Path(__file__).with_name("playground") / "index.html"
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


class UnknownModel(LookupError):
    """A route named a model or version this server does not serve (answered 404)."""


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
                on_batch=lambda rows, n, seconds, name=m.name: metrics.batch(name, rows, n, seconds),
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

    app.add_middleware(Guard, table=table, token=token, limits=limits, metrics=metrics, state=app.state)

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

    def lookup(name: str, version: str | None) -> ServedModel:
        """The served model `name` (at `version`, when given); an unknown one answers 404 through `not_found`."""
        served = table.get(name)
        if served is None:
            raise UnknownModel(f"unknown model '{name[:80]}'; this server serves: {', '.join(table)}")
        if version is not None and version != VERSION:
            raise UnknownModel(f"model '{name}' has only version {VERSION}, not '{version[:40]}'")
        return served

    @app.exception_handler(UnknownModel)
    async def not_found(request: Request, exc: UnknownModel) -> JSONResponse:
        return error(404, str(exc))

    @app.get("/v2/models/{name}")
    @app.get("/v2/models/{name}/versions/{version}")
    async def model_metadata(name: str, version: str | None = None) -> Any:
        served = lookup(name, version)
        sig = served.backend.signature
        return {"name": name, "versions": [VERSION], "platform": served.backend.platform, "inputs": tensor_metadata(sig.inputs), "outputs": tensor_metadata(sig.outputs)}

    @app.get("/v2/models/{name}/ready")
    @app.get("/v2/models/{name}/versions/{version}/ready")
    async def model_ready(name: str, version: str | None = None) -> Any:
        served = lookup(name, version)
        ok = served.batcher is not None and not app.state.draining
        return JSONResponse({"name": name, "ready": ok}, status_code=200 if ok else 503)

    @app.post("/v2/models/{name}/infer")
    @app.post("/v2/models/{name}/versions/{version}/infer")
    async def infer(name: str, request: Request, version: str | None = None) -> Response:
        served = lookup(name, version)
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
        # No draining check here: the Guard refuses requests that arrive after SIGTERM, and one
        # admitted before it (its body perhaps still arriving) is in flight and gets its answer.
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

    @app.post("/v2/repository/index")
    async def repository_index() -> list[dict[str, str]]:
        """Triton's model-repository index: every served model, its version and state."""
        return [{"name": m.name, "version": VERSION, "state": "READY" if m.batcher is not None else "UNAVAILABLE"} for m in models]

    predictors = ThreadPoolExecutor(max_workers=1, thread_name_prefix="deepstrata-predict")

    @app.post("/v2/models/{name}/predict")
    async def predict(name: str, request: Request) -> Response:
        """Raw inputs in, readable rows out, through the run's own preprocessing (the Predictor).

        An image body (Content-Type image/*): the image is made the way the training images were.
        A JSON body: {"inputs": raw arrays as the dataset stores them} or {"texts": [...]} for a
        text-reading run. Query: top_k (default 1). The Predictor runs the run's PyTorch model
        whichever backend serves /infer.
        """
        served = lookup(name, None)
        try:
            top_k = int(request.query_params.get("top_k", "1"))
        except ValueError:
            return error(400, "top_k must be an integer")
        if not 1 <= top_k <= 1000:
            return error(400, f"top_k must be between 1 and 1000, got {top_k}")
        try:
            body = await read_body(request.headers.get("content-length"), request.stream(), limits.max_body_bytes)
        except ProtocolError as err:
            return error(err.status, str(err))
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        loop = asyncio.get_running_loop()
        try:
            rows = await asyncio.wait_for(loop.run_in_executor(predictors, _predict, served, kind, body, top_k), limits.timeout_s)
        except asyncio.TimeoutError:
            return error(504, f"no answer within {limits.timeout_s:g} s (--timeout-s)")
        except (UserError, ProtocolError) as err:
            return error(400, str(err))
        return JSONResponse({"model_name": name, "model_version": VERSION, "predictions": rows})

    @app.post("/v2/models/{name}/explain")
    async def explain(name: str, request: Request) -> Response:
        """An image in; its predicted class and an attribution map over the input out (serving/explanation.py).

        Query: method (a registered explainer, default grad_cam). The run's PyTorch model
        explains, in the same thread as /predict, whichever backend serves /infer.
        """
        served = lookup(name, None)
        method = request.query_params.get("method", "grad_cam")
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if not (kind.startswith("image/") or kind == "application/octet-stream"):
            return error(400, f"send an image (Content-Type image/png, image/jpeg, ...) to /explain, not {kind or 'no Content-Type'}")
        try:
            body = await read_body(request.headers.get("content-length"), request.stream(), limits.max_body_bytes)
        except ProtocolError as err:
            return error(err.status, str(err))
        loop = asyncio.get_running_loop()
        try:
            answer = await asyncio.wait_for(loop.run_in_executor(predictors, _explain, served, body, method), limits.timeout_s)
        except asyncio.TimeoutError:
            return error(504, f"no answer within {limits.timeout_s:g} s (--timeout-s)")
        except (UserError, ProtocolError) as err:
            return error(400, str(err))
        return JSONResponse({"model_name": name, "model_version": VERSION, **answer})

    @app.get("/", response_class=HTMLResponse)
    async def playground() -> HTMLResponse:
        return HTMLResponse(PLAYGROUND.read_text(encoding="utf-8"))

    @app.get("/metrics")
    async def prometheus() -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app


class Guard:
    """Pure ASGI middleware around every route: authentication, body-size and queue admission, metrics, access log.

    Written against ASGI rather than as an `@app.middleware("http")` function so that a refused
    request (401, 413, or 503 because its model's queue is full) costs no routing, no body read
    and no extra task: under overload, refusing must stay much cheaper than serving.
    """

    def __init__(self, app: Any, *, table: dict[str, ServedModel], token: str | None, limits: Limits, metrics: ServerMetrics, state: Any):
        self.app, self.table, self.token, self.limits, self.metrics, self.state = app, table, token, limits, metrics, state

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        path = scope["path"]
        model = _model_of(path, self.table)
        status = [500]

        async def record(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        refusal = self._refusal(scope, path, model)
        if refusal is not None:
            await refusal(scope, receive, record)
        else:
            await self.app(scope, receive, record)
        seconds = time.perf_counter() - start
        self.metrics.observe(model, status[0], seconds)
        client = scope.get("client")
        ACCESS_LOG.info('%s "%s %s" %d %.2fms%s', client[0] if client else "-", scope["method"], path, status[0], seconds * 1000, f" model={model}" if model else "")

    def _refusal(self, scope: dict[str, Any], path: str, model: str) -> JSONResponse | None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"] if k.lower() in (b"authorization", b"content-length")}
        if not (path.startswith("/v2/health/") or path in PUBLIC) and not authorized(headers.get("authorization"), self.token):
            return error(401, "missing or wrong bearer token: send Authorization: Bearer <token>", {"WWW-Authenticate": "Bearer"})
        length = headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > self.limits.max_body_bytes:
            return error(413, f"the body is {length} bytes; this server takes at most {self.limits.max_body_bytes} (--max-body-mb)")
        if model and path.endswith("/infer") and scope["method"] == "POST":
            batcher = self.table[model].batcher
            if self.state.draining:
                return error(503, "the server is shutting down")
            if batcher is not None and batcher.depth >= self.limits.max_queue:
                return error(503, f"server busy: the queue holds {self.limits.max_queue} requests; retry later", {"Retry-After": "1"})
        return None


def _predictor(served: ServedModel) -> Any:
    """The run's Predictor, loaded on first use (in the predictor thread)."""
    if served.predictor is None:
        from deepstrata.run.run import Run

        if not served.run_dir:
            raise UserError(f"model '{served.name}' was not opened from a run, so it has no preprocessing to predict with; use /infer")
        served.predictor = Run.open(served.run_dir).predictor()
    return served.predictor


def _explain(served: ServedModel, body: bytes, method: str) -> dict[str, Any]:
    """The /explain work, in the predictor thread."""
    from deepstrata.serving.explanation import explain_image

    return explain_image(_predictor(served), body, method=method)


def _predict(served: ServedModel, kind: str, body: bytes, top_k: int) -> list[dict[str, Any]]:
    """The /predict work, in the predictor thread: load the Predictor once, then read the body."""
    import json

    predictor = _predictor(served)
    if kind.startswith("image/") or kind == "application/octet-stream":
        return predictor.predict_image_bytes(body, top_k=top_k)
    try:
        payload = json.loads(body, parse_constant=no_constant)
    except (ValueError, RecursionError) as err:
        raise ProtocolError(f"send an image (Content-Type image/png, image/jpeg, ...) or JSON {{\"inputs\": [...]}} / {{\"texts\": [...]}}: {str(err)[:200]}") from None
    if not isinstance(payload, dict) or not ({"inputs", "texts"} & payload.keys()):
        raise ProtocolError('the JSON body must be {"inputs": raw arrays} or {"texts": ["..."]}')
    if "texts" in payload:
        texts = payload["texts"]
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts) or not 1 <= len(texts) <= 1024:
            raise ProtocolError('"texts" must be a list of 1 to 1024 strings')
        return predictor.predict_text(texts)
    try:
        raw = np.asarray(payload["inputs"], dtype=np.float32)
    except (ValueError, TypeError):
        raise ProtocolError('"inputs" must be a (nested) list of numbers') from None
    if not np.isfinite(raw).all():
        raise ProtocolError('"inputs" holds NaN or infinity; send finite numbers')
    return predictor.predict(raw, top_k=top_k)


def _model_of(path: str, table: dict[str, ServedModel]) -> str:
    """The served model a path names (for metrics and the access log); "" for other routes."""
    parts = path.split("/")
    if len(parts) >= 4 and parts[1] == "v2" and parts[2] == "models" and parts[3] in table:
        return parts[3]
    return ""
