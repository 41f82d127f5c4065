"""Closed-loop load: `clients` concurrent clients, each sending its next request when the last one is answered.

Latency is measured per request at the client; throughput counts 200 answers over the wall time of
the measured requests. A few requests per client are sent first and not measured (warm-up).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import httpx
import numpy as np

REQUEST_TIMEOUT_S = 300


@dataclass(frozen=True)
class LoadResult:
    clients: int
    requests: int
    seconds: float
    latencies_s: tuple[float, ...]  # of the 200 answers
    statuses: dict[int, int]

    @property
    def throughput(self) -> float:
        return len(self.latencies_s) / self.seconds

    def percentile_ms(self, q: float) -> float:
        return float(np.percentile(self.latencies_s, q) * 1000) if self.latencies_s else float("nan")

    @classmethod
    def combined(cls, rounds: Sequence[LoadResult]) -> LoadResult:
        """Rounds of one system at one concurrency as one result: answers over their summed wall time."""
        statuses: Counter[int] = Counter()
        for result in rounds:
            statuses.update(result.statuses)
        return cls(rounds[0].clients, sum(r.requests for r in rounds), sum(r.seconds for r in rounds),
                   tuple(latency for r in rounds for latency in r.latencies_s), dict(statuses))


async def _run(url: str, bodies: list[bytes], clients: int, requests: int, warm_up: int, model: str,
               content_type: str) -> LoadResult:
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=REQUEST_TIMEOUT_S, limits=limits) as client:
        async def send(index: int) -> tuple[int, float]:
            started = time.perf_counter()
            response = await client.post("/segment", params={"model": model}, content=bodies[index % len(bodies)],
                                         headers={"Content-Type": content_type})
            return response.status_code, time.perf_counter() - started

        async def warm(worker: int) -> None:
            for index in range(warm_up):
                await send(worker + index)

        await asyncio.gather(*(warm(worker) for worker in range(clients)))
        queue = iter(range(requests))
        results: list[tuple[int, float]] = []

        async def worker() -> None:
            for index in queue:
                results.append(await send(index))

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        seconds = time.perf_counter() - started
    statuses = Counter(status for status, _ in results)
    latencies = tuple(latency for status, latency in results if status == 200)
    return LoadResult(clients, requests, seconds, latencies, dict(statuses))


def run_load(url: str, bodies: list[bytes], clients: int, requests: int, model: str, warm_up: int = 1,
             content_type: str = "image/jpeg") -> LoadResult:
    """POST /segment?model=... with `requests` bodies (cycled) from `clients` closed-loop clients."""
    return asyncio.run(_run(url, bodies, clients, requests, warm_up, model, content_type))
