"""Dynamic batching: one queue per model, its batches run in inference threads of their own, bounded and deadlined.

A request joins its model's queue; the model's worker takes up to `max_batch_size` requests,
waiting at most `max_delay_ms` (counted from the oldest request) for a batch to fill, runs the
backend in a dedicated thread (the event loop keeps serving) and hands each request its slice.
While a batch runs, newcomers queue, so under load batches form even with no delay at all.

Backpressure: a full queue answers 503 with `Retry-After` (the estimated time to drain it);
a request still queued or waiting at its deadline answers 504.

The batch size, delay and batches in flight default to the backend's `BatchDefaults`, declared on its spec
(service/backends/__init__.py, with why); the settings override them only where set.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from service import telemetry
from service.backends import Backend, spec_for
from service.errors import ServiceError
from service.settings import BatchingSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BatchPolicy:
    max_batch_size: int
    max_delay_ms: float
    max_queue_size: int
    timeout_s: float
    concurrent_batches: int = 1  # batches in inference at once (backends that allow it)


def policy_for(backend: Backend, settings: BatchingSettings) -> BatchPolicy:
    """The backend's default batching (its spec's), overridden by whatever the settings set explicitly."""
    defaults = spec_for(backend.name).batching
    size = settings.max_batch_size if settings.max_batch_size is not None else defaults.max_batch_size
    delay = settings.max_delay_ms if settings.max_delay_ms is not None else defaults.max_delay_ms
    concurrent = settings.concurrent_batches if settings.concurrent_batches is not None else defaults.concurrent_batches
    return BatchPolicy(
        max_batch_size=min(size, backend.max_batch_size),
        max_delay_ms=delay,
        max_queue_size=settings.max_queue_size,
        timeout_s=settings.request_timeout_s,
        concurrent_batches=min(concurrent, backend.max_concurrent_runs),
    )


@dataclass(frozen=True)
class BatchOutput:
    """One request's share of a batch, plus where its time went."""

    labels: np.ndarray  # uint8 [H, W] at the model input size
    probabilities: np.ndarray | None  # float32 [H, W, C] when asked for
    queue_s: float
    infer_s: float
    batch_size: int


@dataclass(eq=False)  # identity: the queue removes exactly this request
class _Pending:
    image: np.ndarray
    want_probabilities: bool
    future: asyncio.Future
    enqueued: float
    deadline: float


class Batcher:
    """The queue and worker of one model. `start()` in the event loop, `close()` to drain."""

    def __init__(self, model: str, backend: Backend, policy: BatchPolicy, version: int = 1):
        self.model = model
        self.version = str(version)
        self.backend = backend
        self.policy = policy
        self.consecutive_failures = 0
        self._queue: deque[_Pending] = deque()
        self._arrived = asyncio.Event()
        self._closing = False
        self._seconds_per_batch = 0.0  # moving average, for Retry-After
        self._executor = ThreadPoolExecutor(max_workers=policy.concurrent_batches, thread_name_prefix=f"infer-{model}")
        self._workers: list[asyncio.Task] = []
        self._depth = telemetry.QUEUE_DEPTH.labels(model=model)

    def start(self) -> None:
        self._workers = [asyncio.create_task(self._run(), name=f"batcher-{self.model}-{index}")
                         for index in range(self.policy.concurrent_batches)]

    @property
    def depth(self) -> int:
        return len(self._queue)

    async def submit(self, image: np.ndarray, want_probabilities: bool) -> BatchOutput:
        """Queue one model-sized image and wait for its result (503 when full, 504 past the deadline)."""
        if self._closing:
            raise ServiceError(503, "shutting_down", "the service is shutting down", {"Retry-After": "1"})
        if len(self._queue) >= self.policy.max_queue_size:
            raise ServiceError(
                503, "queue_full",
                f"model {self.model!r} has {len(self._queue)} requests queued (limit {self.policy.max_queue_size})",
                {"Retry-After": str(self._retry_after_s())},
            )
        now = time.perf_counter()
        pending = _Pending(image, want_probabilities, asyncio.get_running_loop().create_future(),
                           now, now + self.policy.timeout_s)
        self._queue.append(pending)
        self._depth.inc()
        self._arrived.set()
        try:
            return await asyncio.wait_for(pending.future, timeout=self.policy.timeout_s)
        except TimeoutError:
            if pending in self._queue:
                self._queue.remove(pending)
                self._depth.dec()
            raise ServiceError(
                504, "deadline_exceeded", f"no result from model {self.model!r} within {self.policy.timeout_s:g} s"
            ) from None

    def _retry_after_s(self) -> int:
        batches_ahead = math.ceil(len(self._queue) / self.policy.max_batch_size)
        return max(1, math.ceil(batches_ahead * self._seconds_per_batch))

    async def close(self) -> None:
        """Stop taking requests, finish everything queued, then release the thread."""
        self._closing = True
        self._arrived.set()
        await asyncio.gather(*self._workers)
        self._executor.shutdown(wait=True)

    async def _run(self) -> None:
        while True:
            while not self._queue:
                if self._closing:
                    return
                self._arrived.clear()
                await self._arrived.wait()
            await self._wait_for_batch()
            batch = self._take_batch()
            if batch:
                await self._infer(batch)

    async def _wait_for_batch(self) -> None:
        """Let a batch fill for up to max_delay_ms after its oldest request arrived."""
        if self.policy.max_delay_ms <= 0:
            return
        fill_by = self._queue[0].enqueued + self.policy.max_delay_ms / 1000
        while len(self._queue) < self.policy.max_batch_size and not self._closing:
            remaining = fill_by - time.perf_counter()
            if remaining <= 0:
                return
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except TimeoutError:
                return

    def _take_batch(self) -> list[_Pending]:
        """Up to max_batch_size live requests; ones already past their deadline get 504 here."""
        batch: list[_Pending] = []
        now = time.perf_counter()
        while self._queue and len(batch) < self.policy.max_batch_size:
            pending = self._queue.popleft()
            self._depth.dec()
            if pending.future.done():
                continue
            if now >= pending.deadline:
                pending.future.set_exception(ServiceError(
                    504, "deadline_exceeded", f"request waited past its deadline in the {self.model!r} queue"))
                continue
            batch.append(pending)
        return batch

    async def _infer(self, batch: list[_Pending]) -> None:
        started = time.perf_counter()
        # A batch of one (the CPU default) is a view of its image: no copy on the request path.
        images = batch[0].image[None] if len(batch) == 1 else np.stack([pending.image for pending in batch])
        want_probabilities = any(pending.want_probabilities for pending in batch)
        loop = asyncio.get_running_loop()
        try:
            result = await loop.run_in_executor(self._executor, self.backend.infer, images, want_probabilities)
        except Exception as exc:  # noqa: BLE001 - every waiting request must hear about it
            self.consecutive_failures += 1
            telemetry.INFERENCE_FAILURES.labels(model=self.model, version=self.version, backend=self.backend.name).inc()
            log.exception("inference failed for model %s (batch of %d)", self.model, len(batch))
            for pending in batch:
                if not pending.future.done():
                    pending.future.set_exception(
                        ServiceError(500, "inference_failed", f"inference failed for model {self.model!r}: {exc}"))
            return
        infer_s = time.perf_counter() - started
        self.consecutive_failures = 0
        previous = self._seconds_per_batch
        self._seconds_per_batch = infer_s if previous == 0 else 0.8 * previous + 0.2 * infer_s
        telemetry.INFERENCE_DURATION.labels(
            model=self.model, version=self.version, backend=self.backend.name).observe(infer_s)
        telemetry.BATCH_SIZE.labels(model=self.model).observe(len(batch))
        for index, pending in enumerate(batch):
            queue_s = started - pending.enqueued
            telemetry.QUEUE_WAIT.labels(model=self.model).observe(queue_s)
            if pending.future.done():
                continue
            probabilities = result.probabilities[index] if pending.want_probabilities else None
            pending.future.set_result(BatchOutput(result.labels[index], probabilities, queue_s, infer_s, len(batch)))
