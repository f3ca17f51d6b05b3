"""Micro-batching: concurrent requests share one forward pass.

Requests go into a bounded asyncio queue. One worker task takes the first waiting job, gathers more
for up to ``wait_ms`` (or until ``max_batch``), and runs the batch on a single model thread so the
event loop keeps accepting connections. While the model is busy, new jobs pile up and form the next
batch, so batches grow with load without adding latency when the server is idle. A full queue is
refused at once (``QueueFull``) so the server degrades to fast 503s instead of unbounded memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("ecgvlm.serve")


class QueueFull(Exception):
    pass


@dataclass
class _Job:
    key: Hashable  # jobs are batched only with jobs of the same key (same task and options)
    payload: Any
    future: asyncio.Future = field(repr=False)


@dataclass
class BatchStats:
    batches: int = 0
    items: int = 0
    largest: int = 0

    def add(self, n: int) -> None:
        self.batches += 1
        self.items += n
        self.largest = max(self.largest, n)


class MicroBatcher:
    """``run_batch(key, payloads) -> results`` is called on one worker thread, one batch at a time."""

    def __init__(
        self,
        run_batch: Callable[[Hashable, list[Any]], list[Any]],
        max_batch: int = 8,
        wait_ms: float = 10.0,
        queue_size: int = 64,
    ) -> None:
        if max_batch < 1 or queue_size < 1:
            raise ValueError("max_batch and queue_size must be >= 1")
        self.run_batch = run_batch
        self.max_batch = max_batch
        self.wait_s = max(0.0, wait_ms) / 1000.0
        self.queue_size = queue_size
        self.stats = BatchStats()
        self._queue: asyncio.Queue[_Job] | None = None
        self._task: asyncio.Task | None = None
        self._executor: ThreadPoolExecutor | None = None

    @property
    def pending(self) -> int:
        return self._queue.qsize() if self._queue else 0

    async def start(self) -> None:
        self._queue = asyncio.Queue(maxsize=self.queue_size)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ecgvlm-model")
        self._task = asyncio.create_task(self._loop(), name="ecgvlm-batcher")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._queue:
            while not self._queue.empty():
                job = self._queue.get_nowait()
                if not job.future.done():
                    job.future.set_exception(RuntimeError("server shutting down"))
        if self._executor:
            self._executor.shutdown(wait=True)

    async def submit(self, key: Hashable, payload: Any) -> Any:
        """Queue one job and wait for its result; raises ``QueueFull`` when the queue is full."""
        if self._queue is None:
            raise RuntimeError("batcher not started")
        future = asyncio.get_running_loop().create_future()
        try:
            self._queue.put_nowait(_Job(key, payload, future))
        except asyncio.QueueFull:
            raise QueueFull from None
        return await future  # a caller's timeout cancels the future; the worker then skips the job

    async def _gather(self) -> list[_Job]:
        assert self._queue is not None
        batch = [await self._queue.get()]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.wait_s
        # Poll instead of wait_for(queue.get()): a timed-out get can drop an item on some Pythons.
        while len(batch) < self.max_batch:
            while len(batch) < self.max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            remaining = deadline - loop.time()
            if len(batch) >= self.max_batch or remaining <= 0:
                break
            await asyncio.sleep(min(remaining, 0.001))
        return batch

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            jobs = [j for j in await self._gather() if not j.future.done()]
            groups: dict[Hashable, list[_Job]] = {}
            for job in jobs:
                groups.setdefault(job.key, []).append(job)
            for key, group in groups.items():
                self.stats.add(len(group))
                try:
                    results = await loop.run_in_executor(
                        self._executor, self.run_batch, key, [j.payload for j in group]
                    )
                    if len(results) != len(group):
                        raise RuntimeError(f"batch of {len(group)} returned {len(results)} results")
                except Exception as e:  # one failing batch must not stop the worker
                    log.exception("batch of %d (%s) failed", len(group), key)
                    for job in group:
                        if not job.future.done():
                            job.future.set_exception(e)
                    continue
                for job, result in zip(group, results):
                    if not job.future.done():
                        job.future.set_result(result)
