"""Dynamic batching: concurrent requests merged into one forward pass, and split back.

Problem: a server answering one request per forward pass wastes the batch dimension: on a
compute-bound model, 32 single-row passes cost far more than one 32-row pass, so throughput
under concurrency collapses. Waiting forever for a full batch instead adds latency at low load.
Idea: Triton's dynamic batcher. Requests enter a bounded queue (full: refused at once, so the
client hears 503 rather than waiting). One loop takes the oldest request and, for at most
`max_queue_delay_ms`, adds the next ones while their rows fit `max_batch_size`; it concatenates
their inputs along the batch dimension, runs the backend once in the model's single worker
thread, and hands each request exactly its own rows back. A request whose client gave up
(timed out) is skipped before it costs a forward pass. The loop collects the next batch while
the worker computes the current one.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from deepstrata.serving.backends import Backend


class QueueFull(RuntimeError):
    """The model's queue holds `max_queue` requests already: answer 503 now."""


@dataclass
class _Item:
    inputs: list[np.ndarray]
    rows: int
    future: asyncio.Future
    enqueued: float = field(default_factory=time.perf_counter)


class DynamicBatcher:
    """One model's queue, batching loop and worker thread.

    `on_batch(rows, requests, seconds)` is called after every forward pass (the metrics'
    batch-size and inference-time histograms); `on_depth(n)` whenever the queue's length changes.
    """

    def __init__(
        self,
        backend: Backend,
        *,
        max_batch_size: int,
        max_queue_delay_ms: float,
        max_queue: int,
        on_batch: Callable[[int, int, float], None] | None = None,
        on_depth: Callable[[int], None] | None = None,
    ):
        if max_batch_size < 1 or max_queue < 1 or max_queue_delay_ms < 0:
            raise ValueError(f"max_batch_size and max_queue must be >= 1 and max_queue_delay_ms >= 0, got {max_batch_size}, {max_queue}, {max_queue_delay_ms}")
        self.backend = backend
        self.max_batch_size, self.max_queue = max_batch_size, max_queue
        self.delay = max_queue_delay_ms / 1000.0
        self._on_batch = on_batch or (lambda rows, n, seconds: None)
        self._on_depth = on_depth or (lambda n: None)
        self._queue: asyncio.Queue[_Item] | None = None
        self._task: asyncio.Task | None = None
        self._worker = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="deepstrata-infer")
        self._carry: _Item | None = None

    async def start(self) -> None:
        self._queue = asyncio.Queue(maxsize=self.max_queue)
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        self._worker.shutdown(wait=True)

    @property
    def depth(self) -> int:
        return (self._queue.qsize() if self._queue is not None else 0) + (self._carry is not None)

    def submit(self, inputs: list[np.ndarray], rows: int) -> asyncio.Future:
        """Queue one request; its future resolves to the list of its output arrays."""
        if self._queue is None:
            raise RuntimeError("the batcher is not started")
        item = _Item(inputs, rows, asyncio.get_running_loop().create_future())
        try:
            self._queue.put_nowait(item)
        except asyncio.QueueFull:
            raise QueueFull(f"the queue holds {self.max_queue} requests") from None
        self._on_depth(self.depth)
        return item.future

    async def _next(self, timeout: float | None) -> _Item | None:
        if self._carry is not None:
            item, self._carry = self._carry, None
            return item
        assert self._queue is not None
        if timeout is None:
            return await self._queue.get()
        if timeout <= 0:
            return self._queue.get_nowait() if not self._queue.empty() else None
        try:
            return await asyncio.wait_for(self._queue.get(), timeout)
        except asyncio.TimeoutError:
            return None

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            first = await self._next(None)
            if first is None or first.future.done():
                continue
            batch, rows = [first], first.rows
            deadline = loop.time() + self.delay
            while rows < self.max_batch_size:
                item = await self._next(deadline - loop.time())
                if item is None:
                    break
                if item.future.done():  # its client timed out while it waited
                    continue
                if rows + item.rows > self.max_batch_size:
                    self._carry = item  # first of the next batch
                    break
                batch.append(item)
                rows += item.rows
            self._on_depth(self.depth)
            live = [i for i in batch if not i.future.done()]
            if not live:
                continue
            await self._run(live)

    async def _run(self, batch: list[_Item]) -> None:
        loop = asyncio.get_running_loop()
        n_inputs = len(batch[0].inputs)
        merged = [np.concatenate([item.inputs[k] for item in batch]) if len(batch) > 1 else batch[0].inputs[k] for k in range(n_inputs)]
        rows = sum(i.rows for i in batch)
        try:
            started = time.perf_counter()
            outputs = await loop.run_in_executor(self._worker, self.backend.infer, merged)
            self._on_batch(rows, len(batch), time.perf_counter() - started)
            bad = [tuple(o.shape) for o in outputs if o.ndim == 0 or o.shape[0] != rows]
            if bad:
                raise RuntimeError(f"the model gave outputs of shapes {bad} for {rows} rows; only batch-first outputs can be split back")
        except Exception as err:  # the model failed: every request of the batch hears it
            for item in batch:
                if not item.future.done():
                    item.future.set_exception(err)
            return
        start = 0
        for item in batch:
            mine = [o[start : start + item.rows] for o in outputs]
            start += item.rows
            if not item.future.done():
                item.future.set_result(mine)
