"""Running the app: runs opened as served models, uvicorn on a bound socket, a drain on SIGTERM.

Problem: a server must start on a safe address, say where it listens (port 0 picks a free one,
as tests need), and stop cleanly when its supervisor sends SIGTERM: answer what is in flight
and queued, refuse new work, exit 0; uvicorn answers SIGTERM gracefully but then re-raises the
signal, so the process would die by it instead of exiting 0.
Idea: `open_models` opens each run with its backend and name (the recipe's, unless `--name`
says otherwise); `serve` binds the socket itself, prints the URL once it is bound, and runs a
uvicorn `Server` whose signal handler marks the app as draining (readiness turns 503, new infer
requests are refused) and lets uvicorn's graceful shutdown finish within `drain_timeout_s`.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import signal
import socket
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import FrameType

import uvicorn
from fastapi import FastAPI

from deepstrata.errors import UserError
from deepstrata.serving.app import ServedModel, create_app
from deepstrata.serving.limits import Limits

TOKEN_ENV = "DEEPSTRATA_SERVE_TOKEN"
DEFAULT_HOST = "127.0.0.1"


def open_models(run_dirs: Sequence[str | Path], *, names: Sequence[str] = (), backend: str = "torch") -> list[ServedModel]:
    from deepstrata.run.run import Run
    from deepstrata.serving.backends import open_backend

    if names and len(names) != len(run_dirs):
        raise UserError(f"give one --name per run: {len(run_dirs)} runs, {len(names)} names")
    models = []
    for i, run_dir in enumerate(run_dirs):
        run = Run.open(run_dir)
        run.require_model()
        name = names[i] if names else run.name
        if not name or "/" in name:
            raise UserError(f"model name {name!r} must be non-empty and contain no '/'")
        with run.environment():
            models.append(ServedModel(name=name, backend=open_backend(backend, run), run_dir=str(run.path)))
    taken = [m.name for m in models]
    if len(set(taken)) != len(taken):
        raise UserError(f"two runs would both be served as {sorted({n for n in taken if taken.count(n) > 1})}; name them with --name A --name B")
    return models


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets that say so, and without it
    # Nagle's algorithm and the client's delayed ACK add about 40 ms to every response.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as err:
        sock.close()
        raise UserError(f"cannot listen on {host}:{port} ({err.strerror}); choose another --port, or 0 for a free one") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def build_server(models: list[ServedModel], *, host: str, port: int, token: str | None, limits: Limits) -> tuple[DrainingServer, socket.socket, str]:
    """(the uvicorn server around the app, its bound socket, the base URL): what `serve` and `serve_in_thread` run."""
    app = create_app(models, limits=limits, token=token)
    sock = bind(host, port)
    url_host = f"[{host}]" if ":" in host else host
    config = uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=limits.drain_timeout_s, lifespan="on")
    return DrainingServer(config, app), sock, f"http://{url_host}:{sock.getsockname()[1]}"


def serve(
    models: list[ServedModel],
    *,
    host: str = DEFAULT_HOST,
    port: int = 8000,
    token: str | None = None,
    limits: Limits | None = None,
    access_log: bool = True,
) -> int:
    """Serve until SIGTERM or Ctrl-C; returns 0 after a clean drain."""
    token = token or os.environ.get(TOKEN_ENV) or None
    server, sock, url = build_server(models, host=host, port=port, token=token, limits=limits or Limits())
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    access = logging.getLogger("deepstrata.serving.access")
    access.handlers[:] = [handler] if access_log else []
    access.setLevel(logging.INFO)
    access.propagate = False
    if not is_loopback(host):
        print(f"warning: listening on {host}, reachable from other machines{'' if token else ' with no --token'}", file=sys.stderr, flush=True)
    print(f"serving {', '.join(m.name for m in models)} at {url}/v2 (backend {models[0].backend.platform}; Ctrl-C or SIGTERM drains and stops)", flush=True)
    server.run(sockets=[sock])
    return 0


class DrainingServer(uvicorn.Server):
    """uvicorn's Server whose SIGTERM/SIGINT marks the app draining and is not re-raised after the drain."""

    def __init__(self, config: uvicorn.Config, app: FastAPI):
        super().__init__(config)
        self.app = app

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.app.state.draining = True
        if self.should_exit and sig == signal.SIGINT:
            self.force_exit = True  # a second Ctrl-C: stop now
        self.should_exit = True  # not recorded in _captured_signals: exit 0 after the drain


@contextlib.contextmanager
def serve_in_thread(models: list[ServedModel], *, host: str = DEFAULT_HOST, port: int = 0, token: str | None = None, limits: Limits | None = None) -> Iterator[str]:
    """Serve in a background thread for the block's duration; yields the base URL (notebooks, tests, benchmarks).

    The server is ready when the block starts and drained and stopped when it ends.
    """
    import threading
    import time
    import urllib.request

    limits = limits or Limits()
    server, sock, url = build_server(models, host=host, port=port, token=token, limits=limits)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="deepstrata-serve", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"{url}/v2/health/ready", timeout=1) as reply:
                if reply.status == 200:
                    break
        except OSError:
            pass
        if time.monotonic() > deadline or not thread.is_alive():
            server.should_exit = True
            raise RuntimeError(f"the server at {url} did not become ready within 30 s")
        time.sleep(0.02)
    try:
        yield url
    finally:
        server.app.state.draining = True
        server.should_exit = True
        thread.join(timeout=limits.drain_timeout_s + 5)
