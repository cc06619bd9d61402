"""`strata serve RUN [RUN ...]`: finished runs behind an Open Inference Protocol (KServe v2) server."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command()
    def serve(
        run_dirs: list[Path] = typer.Argument(..., help="Finished run directories (original or derived: calibrated, pruned, quantized)."),
        backend: str = typer.Option("torch", "--backend", help="torch (eager PyTorch) or onnxruntime (the run's ONNX export; exported first if missing)."),
        host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on; anything but loopback is reachable from other machines."),
        port: int = typer.Option(8000, "--port", help="Port; 0 picks a free one (printed at start)."),
        token: str | None = typer.Option(None, "--token", help="Require Authorization: Bearer TOKEN on every route but health (or set DEEPSTRATA_SERVE_TOKEN)."),
        name: list[str] = typer.Option([], "--name", help="The served name of each run, in order (default: the run's recipe name)."),
        max_batch_size: int = typer.Option(32, "--max-batch-size", help="Rows merged into one forward pass; 1 turns dynamic batching off."),
        max_queue_delay_ms: float = typer.Option(2.0, "--max-queue-delay-ms", help="How long the first request of a batch waits for others."),
        max_queue: int = typer.Option(256, "--max-queue", help="Requests waiting per model; more are answered 503 at once."),
        timeout_s: float = typer.Option(10.0, "--timeout-s", help="A request not answered by then gets 504."),
        max_body_mb: float = typer.Option(32.0, "--max-body-mb", help="Largest request body; larger ones get 413 before they are read."),
        max_rows: int = typer.Option(1024, "--max-rows", help="Largest batch size of one request."),
        drain_timeout_s: float = typer.Option(30.0, "--drain-timeout-s", help="After SIGTERM: time to answer in-flight and queued requests."),
        access_log: bool = typer.Option(True, "--access-log/--no-access-log", help="One line per request on stderr."),
    ) -> None:
        """Serve runs over the Open Inference Protocol (KServe v2, HTTP): /v2/health/*, /v2/models/NAME/infer, /metrics."""
        from deepstrata.serving.limits import MIB, Limits
        from deepstrata.serving.server import open_models
        from deepstrata.serving.server import serve as run_server

        try:
            limits = Limits(
                max_body_bytes=int(max_body_mb * MIB),
                max_batch_size=max_batch_size,
                max_queue_delay_ms=max_queue_delay_ms,
                max_queue=max_queue,
                timeout_s=timeout_s,
                max_rows=max_rows,
                drain_timeout_s=drain_timeout_s,
            )
        except ValueError as err:
            from deepstrata.errors import UserError

            raise UserError(f"serve: {err}") from None
        models = open_models(run_dirs, names=name, backend=backend)
        raise typer.Exit(run_server(models, host=host, port=port, token=token, limits=limits, access_log=access_log))
