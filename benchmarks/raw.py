"""The baseline: a raw ONNX Runtime `session.run` loop over the same images (already decoded and letterboxed),
from `clients` threads sharing one session with the service's session options, fetching only the labels."""

from __future__ import annotations

import threading
import time

import numpy as np
import onnxruntime as ort

from benchmarks.load import LoadResult
from modelcard.card import ModelCard, Precision
from modelcard.onnx_runner import open_session
from service.backends.onnx import session_options_for
from service.settings import OnnxSettings


def session_for(card: ModelCard, precision: Precision = "fp32") -> ort.InferenceSession:
    """The card's ONNX file of `precision`, with the session options the service's ONNX CPU backend uses by default."""
    return open_session(card.onnx_file(precision), session_options_for(OnnxSettings()))


def run_raw(session: ort.InferenceSession, card: ModelCard, canvases: list[np.ndarray], clients: int,
            requests: int) -> LoadResult:
    """`requests` batch-1 runs spread over `clients` threads (ORT releases the GIL while it runs)."""
    feeds = [{card.input.name: canvas[None]} for canvas in canvases]
    outputs = [card.outputs.labels.name]
    for feed in feeds[:clients]:  # warm-up, unmeasured
        session.run(outputs, feed)
    lock = threading.Lock()
    next_index = 0
    latencies: list[float] = []

    def worker() -> None:
        nonlocal next_index
        while True:
            with lock:
                if next_index >= requests:
                    return
                index, next_index = next_index, next_index + 1
            started = time.perf_counter()
            session.run(outputs, feeds[index % len(feeds)])
            latency = time.perf_counter() - started
            with lock:
                latencies.append(latency)

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return LoadResult(clients, requests, time.perf_counter() - started, tuple(latencies), {200: len(latencies)})
