"""Micro-batching: concurrent requests share one forward pass.

Requests go into a bounded asyncio queue. One worker task takes the first waiting job, gathers more
for up to ``wait_ms`` (or until ``max_batch``), and runs the batch on a single model thread so the
event loop keeps accepting connections. While the model is busy, new jobs pile up and form the next
batch, so batches grow with load without adding latency when the server is idle. A full queue is
refused at once (``QueueFull``) so the server degrades to fast 503s instead of unbounded memory.

Admission also looks at time: the worker keeps a moving average of the seconds one item costs
(a batch's time over its size), and ``expected_wait()`` is that times the items ahead: the running
batch, and, while the worker is busy, every batch up to the job's own counted full (later arrivals
join a batch until the worker takes it). The app refuses a request whose expected wait is past its time limit at once, instead of
letting it wait the whole limit for a 504. A job whose caller has gone (timed out, disconnected:
its future is cancelled) is dropped when the worker reaches it and never runs; ``pending`` counts
only live jobs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("ecgvlm.serve")


class QueueFull(Exception):
    pass


# weight of the newest batch in the per-item time average: a few batches settle it, one outlier
# (a first, cold batch) does not dominate it
EWMA_WEIGHT = 0.3
# admit while the expected wait is at most this share of the limit: batch times vary by a fifth or
# more when other work shares the cores (measured: a 48-client burst on a busy 2-core machine
# ran batches 1.3x slower than the warm-up said, and without headroom 7 admitted requests ran late)
ADMIT_SHARE = 0.8


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
        self.item_seconds: float | None = None  # moving average; None until a batch has run
        self.dropped = 0  # jobs whose caller left before they ran
        self._waiting: set[asyncio.Future] = set()  # futures of live queued jobs
        self._running = 0
        self._queue: asyncio.Queue[_Job] | None = None
        self._task: asyncio.Task | None = None
        self._executor: ThreadPoolExecutor | None = None

    @property
    def pending(self) -> int:
        """Jobs waiting whose callers still wait for them."""
        return len(self._waiting)

    def expected_wait(self) -> float | None:
        """Seconds a job submitted now should wait for its result; None before any batch ran."""
        if self.item_seconds is None:
            return None
        n = self.pending + 1
        if not self._running and n <= self.max_batch:
            return n * self.item_seconds  # the worker is free: the next batch is what waits now
        # busy: the job waits for the running batch and the batches ahead, and its own batch may
        # fill with later arrivals before the worker is free; count those batches as full
        return (self._running + math.ceil(n / self.max_batch) * self.max_batch) * self.item_seconds

    def admits(self, limit_s: float) -> tuple[bool, float | None]:
        """(admit?, expected wait) for a job that must finish within ``limit_s``. Before any batch
        has been timed only the queue's size limits admission (the server times a warm-up page at
        start, so that is only the case when it was told not to)."""
        wait = self.expected_wait()
        if wait is None or not (self.pending or self._running):
            return True, wait  # nothing ahead: not busy (a job slower than its limit gets its 504)
        return wait <= ADMIT_SHARE * limit_s, wait

    async def start(self) -> None:
        # unbounded: capacity counts live jobs only (``pending``), not the cancelled ones in it
        self._queue = asyncio.Queue()
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
        if self.pending >= self.queue_size:
            raise QueueFull
        future = asyncio.get_running_loop().create_future()
        job = _Job(key, payload, future)
        self._waiting.add(future)
        future.add_done_callback(self._waiting.discard)
        self._queue.put_nowait(job)
        return await future  # a caller's timeout cancels the future; the worker then skips the job

    def _take(self, job: _Job, batch: list[_Job]) -> None:
        if job.future.done():  # its caller has gone: drop it here, before it reaches the model
            self.dropped += 1
            return
        self._waiting.discard(job.future)
        batch.append(job)

    async def _gather(self) -> list[_Job]:
        assert self._queue is not None
        batch: list[_Job] = []
        while not batch:
            self._take(await self._queue.get(), batch)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.wait_s
        # Poll instead of wait_for(queue.get()): a timed-out get can drop an item on some Pythons.
        while len(batch) < self.max_batch:
            while len(batch) < self.max_batch and not self._queue.empty():
                self._take(self._queue.get_nowait(), batch)
            remaining = deadline - loop.time()
            if len(batch) >= self.max_batch or remaining <= 0:
                break
            await asyncio.sleep(min(remaining, 0.001))
        return batch

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            jobs = await self._gather()
            groups: dict[Hashable, list[_Job]] = {}
            for job in jobs:
                groups.setdefault(job.key, []).append(job)
            for key, group in groups.items():
                group = [j for j in group if not j.future.done()]  # callers gone while others ran
                self.dropped += len(groups[key]) - len(group)
                if not group:
                    continue
                self.stats.add(len(group))
                self._running = len(group)
                t0 = loop.time()
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
                finally:
                    self._running = 0
                per_item = (loop.time() - t0) / len(group)
                # a slowdown counts at once, a speed-up through the average: a wait guessed short
                # costs a 504, one guessed long only an early 503
                self.item_seconds = (
                    per_item
                    if self.item_seconds is None
                    else max(per_item, EWMA_WEIGHT * per_item + (1 - EWMA_WEIGHT) * self.item_seconds)
                )
                for job, result in zip(group, results):
                    if not job.future.done():
                        job.future.set_result(result)
