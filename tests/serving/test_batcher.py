"""The dynamic batcher: concurrent requests share forward passes, each gets exactly its rows back."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest

from deepstrata.export.signature import Signature, TensorSpec
from deepstrata.serving.batcher import DynamicBatcher, QueueFull


class Recording:
    """y = 2x + row id, recording every batch's size; optionally slow."""

    platform = "test"
    signature = Signature([TensorSpec("x", "float32", [-1, 1])], [TensorSpec("y", "float32", [-1, 1])])

    def __init__(self, delay: float = 0.0):
        self.batches: list[int] = []
        self.delay = delay
        self.threads: set[str] = set()

    def infer(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        self.batches.append(len(inputs[0]))
        self.threads.add(threading.current_thread().name)
        time.sleep(self.delay)
        return [inputs[0] * 2]


def _run(coro):
    return asyncio.run(coro)


def test_concurrent_requests_are_merged_and_split_back_in_order() -> None:
    backend = Recording(delay=0.02)

    async def main() -> list[np.ndarray]:
        b = DynamicBatcher(backend, max_batch_size=16, max_queue_delay_ms=50, max_queue=100)
        await b.start()
        rows = [1, 3, 2, 5, 1, 4, 2, 2]
        futures = [b.submit([np.full((n, 1), float(i), np.float32)], n) for i, n in enumerate(rows)]
        out = await asyncio.gather(*futures)
        await b.stop()
        return [o[0] for o in out]

    outs = _run(main())
    for i, o in enumerate(outs):
        assert (o == 2.0 * i).all()  # each request gets its own rows: no row of another
    assert [len(o) for o in outs] == [1, 3, 2, 5, 1, 4, 2, 2]
    assert backend.batches == [16, 4]  # 1+3+2+5+1+4 = 16 fit; 2+2 carried to the next pass
    assert len(backend.threads) == 1  # every forward pass in the one worker thread


def test_max_batch_size_one_runs_every_request_alone() -> None:
    backend = Recording()

    async def main() -> None:
        b = DynamicBatcher(backend, max_batch_size=1, max_queue_delay_ms=50, max_queue=100)
        await b.start()
        await asyncio.gather(*[b.submit([np.zeros((1, 1), np.float32)], 1) for _ in range(5)])
        await b.stop()

    _run(main())
    assert backend.batches == [1] * 5


def test_a_full_queue_refuses_at_once_and_a_given_up_request_costs_no_pass() -> None:
    backend = Recording(delay=0.2)

    async def main() -> None:
        b = DynamicBatcher(backend, max_batch_size=1, max_queue_delay_ms=0, max_queue=2)
        await b.start()
        first = b.submit([np.zeros((1, 1), np.float32)], 1)
        await asyncio.sleep(0.05)  # the first is computing; the queue is empty again
        waiting = [b.submit([np.full((1, 1), float(i), np.float32)], 1) for i in (1, 2)]
        with pytest.raises(QueueFull):
            b.submit([np.zeros((1, 1), np.float32)], 1)
        waiting[0].cancel()  # its client timed out
        await first
        assert (await waiting[1])[0][0, 0] == 4.0
        await b.stop()

    _run(main())
    assert backend.batches == [1, 1]  # the cancelled request never reached the model


def test_a_failing_model_fails_every_request_of_its_batch() -> None:
    class Broken(Recording):
        def infer(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
            raise RuntimeError("boom")

    async def main() -> None:
        b = DynamicBatcher(Broken(), max_batch_size=8, max_queue_delay_ms=20, max_queue=8)
        await b.start()
        results = await asyncio.gather(*[b.submit([np.zeros((1, 1), np.float32)], 1) for _ in range(3)], return_exceptions=True)
        assert all(isinstance(r, RuntimeError) and "boom" in str(r) for r in results)
        await b.stop()

    _run(main())
