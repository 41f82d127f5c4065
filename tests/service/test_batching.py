"""The batcher's rules, timed against a backend whose cost per batch is known."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest

from service.backends import Backend, InferenceResult, spec_for
from service.batching import Batcher, BatchPolicy, policy_for
from service.errors import ServiceError
from service.settings import BackendName, BatchingSettings
from tests.support.concurrency import InFlight

SIZE = 8


class TimedBackend(Backend):
    """Labels = the first pixel's red value; each batch takes `seconds`; records batch sizes."""

    name = "onnx-cpu"
    precision = "fp32"

    def __init__(self, seconds: float = 0.05, max_batch_size: int = 16, fail: bool = False):
        self.seconds, self.max_batch_size, self.fail = seconds, max_batch_size, fail
        self.batch_sizes: list[int] = []
        self.threads: set[str] = set()

    def infer(self, images: np.ndarray, want_probabilities: bool) -> InferenceResult:
        self.threads.add(threading.current_thread().name)
        self.batch_sizes.append(len(images))
        time.sleep(self.seconds)
        if self.fail:
            raise RuntimeError("device lost")
        labels = np.broadcast_to(images[:, :1, :1, 0], images.shape[:3]).copy()
        probabilities = np.ones((*images.shape[:3], 2), np.float32) if want_probabilities else None
        return InferenceResult(labels, probabilities)

    def close(self) -> None:
        pass


def image(value: int) -> np.ndarray:
    return np.full((SIZE, SIZE, 3), value, np.uint8)


def policy(**overrides) -> BatchPolicy:
    return BatchPolicy(**{"max_batch_size": 4, "max_delay_ms": 0.0, "max_queue_size": 16, "timeout_s": 5.0,
                          **overrides})


async def started(backend: Backend, **overrides) -> Batcher:
    batcher = Batcher("test", backend, policy(**overrides))
    batcher.start()
    return batcher


def test_cpu_defaults_never_wait_or_batch_and_settings_override():
    cpu = TimedBackend()
    assert policy_for(cpu, BatchingSettings()).max_batch_size == 1
    assert policy_for(cpu, BatchingSettings()).max_delay_ms == 0
    tuned = policy_for(cpu, BatchingSettings(max_batch_size=64, max_delay_ms=3))
    assert (tuned.max_batch_size, tuned.max_delay_ms) == (cpu.max_batch_size, 3)  # capped by the backend


@pytest.mark.parametrize("name", [BackendName.TENSORRT, BackendName.ONNX_CUDA, BackendName.ONNX_CPU])
def test_each_engines_defaults_are_its_specs_and_one_setting_overrides_only_itself(name):
    backend = TimedBackend(max_batch_size=64)
    backend.name = name
    defaults = spec_for(name).batching
    backend.max_concurrent_runs = 4
    default = policy_for(backend, BatchingSettings())
    assert (default.max_batch_size, default.max_delay_ms, default.concurrent_batches) == (
        defaults.max_batch_size, defaults.max_delay_ms, defaults.concurrent_batches)
    sized = policy_for(backend, BatchingSettings(max_batch_size=3))
    assert (sized.max_batch_size, sized.max_delay_ms, sized.concurrent_batches) == (
        3, defaults.max_delay_ms, defaults.concurrent_batches)
    serial = policy_for(backend, BatchingSettings(concurrent_batches=1))
    assert (serial.max_batch_size, serial.concurrent_batches) == (defaults.max_batch_size, 1)


def test_onnx_on_cpu_keeps_two_batches_in_flight_by_default():
    """Measured faster at 8 clients (docs/ARCHITECTURE.md); a backend that runs one at a time still gets one."""
    cpu = TimedBackend()
    cpu.max_concurrent_runs = 4
    assert policy_for(cpu, BatchingSettings()).concurrent_batches == 2
    cpu.max_concurrent_runs = 1
    assert policy_for(cpu, BatchingSettings()).concurrent_batches == 1


def test_each_request_gets_its_own_result_and_inference_runs_off_the_loop():
    async def scenario():
        backend = TimedBackend()
        batcher = await started(backend)
        outputs = await asyncio.gather(*(batcher.submit(image(v), want_probabilities=False) for v in range(10)))
        await batcher.close()
        return backend, outputs

    backend, outputs = asyncio.run(scenario())
    assert [int(o.labels[0, 0]) for o in outputs] == list(range(10))
    assert all(o.probabilities is None for o in outputs)
    assert backend.threads == {"infer-test_0"}
    assert max(backend.batch_sizes) <= 4 and sum(backend.batch_sizes) == 10


def test_without_delay_a_lone_request_runs_at_once_and_queued_ones_batch_behind_a_running_batch():
    async def scenario():
        backend = TimedBackend(seconds=0.1)
        batcher = await started(backend)
        first = asyncio.create_task(batcher.submit(image(1), want_probabilities=False))
        await asyncio.sleep(0.02)  # the first batch is running now
        rest = [asyncio.create_task(batcher.submit(image(v), want_probabilities=False)) for v in range(3)]
        first_output = await first
        await asyncio.gather(*rest)
        await batcher.close()
        return backend, first_output

    backend, first_output = asyncio.run(scenario())
    assert backend.batch_sizes == [1, 3]
    assert first_output.queue_s < 0.02  # it did not wait for company


def test_delay_lets_a_batch_fill():
    async def scenario():
        backend = TimedBackend(seconds=0.01)
        batcher = await started(backend, max_delay_ms=200)
        tasks = []
        for value in range(4):
            tasks.append(asyncio.create_task(batcher.submit(image(value), want_probabilities=True)))
            await asyncio.sleep(0.01)
        outputs = await asyncio.gather(*tasks)
        await batcher.close()
        return backend, outputs

    backend, outputs = asyncio.run(scenario())
    assert backend.batch_sizes == [4]  # full before the delay ran out
    assert all(o.batch_size == 4 and o.probabilities.shape == (SIZE, SIZE, 2) for o in outputs)


def test_full_queue_answers_503_with_retry_after():
    async def scenario():
        batcher = await started(TimedBackend(seconds=0.2), max_batch_size=1, max_queue_size=2)
        tasks = [asyncio.create_task(batcher.submit(image(v), want_probabilities=False)) for v in range(5)]
        results = await asyncio.gather(*tasks, return_exceptions=True)
        await batcher.close()
        return results

    results = asyncio.run(scenario())
    refused = [r for r in results if isinstance(r, ServiceError)]
    assert len(refused) == 3 and {r.status for r in refused} == {503}
    assert all(int(r.headers["Retry-After"]) >= 1 for r in refused)
    assert sum(not isinstance(r, Exception) for r in results) == 2


def test_requests_past_their_deadline_get_504_and_the_queue_recovers():
    async def scenario():
        backend = TimedBackend(seconds=0.3)
        batcher = await started(backend, max_batch_size=1, timeout_s=0.2)
        results = await asyncio.gather(*(batcher.submit(image(v), want_probabilities=False) for v in range(3)),
                                       return_exceptions=True)
        depth_after_timeouts = batcher.depth
        backend.seconds = 0.01
        await asyncio.sleep(0.4)  # let the running batch finish
        later = await batcher.submit(image(7), want_probabilities=False)
        await batcher.close()
        return results, depth_after_timeouts, later

    results, depth, later = asyncio.run(scenario())
    assert all(isinstance(r, ServiceError) and r.status == 504 for r in results)
    assert depth == 0
    assert int(later.labels[0, 0]) == 7


def test_backend_failure_reaches_every_request_and_counts():
    async def scenario():
        batcher = await started(TimedBackend(seconds=0.01, fail=True))
        results = await asyncio.gather(*(batcher.submit(image(v), want_probabilities=False) for v in range(2)),
                                       return_exceptions=True)
        failures = batcher.consecutive_failures
        await batcher.close()
        return results, failures

    results, failures = asyncio.run(scenario())
    assert all(isinstance(r, ServiceError) and r.status == 500 for r in results)
    assert failures >= 1


def test_close_finishes_queued_work_then_refuses_new_work():
    async def scenario():
        batcher = await started(TimedBackend(seconds=0.05), max_batch_size=1)
        tasks = [asyncio.create_task(batcher.submit(image(v), want_probabilities=False)) for v in range(4)]
        await asyncio.sleep(0)
        await batcher.close()
        outputs = await asyncio.gather(*tasks)
        with pytest.raises(ServiceError) as refused:
            await batcher.submit(image(9), want_probabilities=False)
        return outputs, refused.value

    outputs, refused = asyncio.run(scenario())
    assert [int(o.labels[0, 0]) for o in outputs] == [0, 1, 2, 3]
    assert refused.status == 503


def test_concurrent_batches_run_side_by_side_only_where_the_backend_allows():
    class CountingBackend(TimedBackend):
        """Counts the infer calls running at the same moment."""

        def __init__(self):
            super().__init__(seconds=0.2)
            self.in_flight = InFlight()

        def infer(self, images: np.ndarray, want_probabilities: bool) -> InferenceResult:
            with self.in_flight:
                return super().infer(images, want_probabilities)

    backend = CountingBackend()
    assert policy_for(backend, BatchingSettings(concurrent_batches=2)).concurrent_batches == 1  # a Backend's default
    backend.max_concurrent_runs = 2
    assert policy_for(backend, BatchingSettings(concurrent_batches=3)).concurrent_batches == 2

    async def scenario() -> list[int]:
        batcher = await started(backend, max_batch_size=1, concurrent_batches=2)
        outputs = await asyncio.gather(*(batcher.submit(image(value), False) for value in (3, 4, 5)))
        await batcher.close()
        return [int(output.labels[0, 0]) for output in outputs]

    assert asyncio.run(scenario()) == [3, 4, 5]
    assert backend.in_flight.most == 2 and len(backend.threads) == 2
