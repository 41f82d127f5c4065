"""The baselines, run in the benchmark's own process from `clients` threads sharing one session with the service's
session options:

- the raw loop: `session.run` on images already decoded and letterboxed, fetching only the labels;
- the in-process pipeline: the naive server's whole per-request work (decode, letterbox, run, map the labels
  back, encode a PNG) on the encoded bytes, with no HTTP and no serving around it. At one client nothing
  overlaps a request's own decode and encode, so this is the ceiling of any server's ratio to the raw loop.
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable

import numpy as np
import onnxruntime as ort
from PIL import Image

from benchmarks.load import LoadResult
from modelcard.card import ModelCard, Precision
from modelcard.geometry import crop, letterbox, resize_labels
from modelcard.onnx_runner import open_session
from service.backends.onnx import session_options_for
from service.encoding import encode_png
from service.settings import OnnxSettings


def session_for(card: ModelCard, precision: Precision = "fp32") -> ort.InferenceSession:
    """The card's ONNX file of `precision`, with the session options the service's ONNX CPU backend uses by default."""
    return open_session(card.onnx_file(precision), session_options_for(OnnxSettings()))


def segment_png(session: ort.InferenceSession, card: ModelCard, data: bytes) -> bytes:
    """The least a server must do per request: encoded image in, indexed PNG of its labels at its own size out."""
    image = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    canvas, placement = letterbox(image, card.input_size)
    labels = session.run([card.outputs.labels.name], {card.input.name: canvas[None]})[0][0]
    return encode_png(resize_labels(crop(labels, placement), image.shape[:2]), card.palette)


def run_raw(session: ort.InferenceSession, card: ModelCard, canvases: list[np.ndarray], clients: int,
            requests: int) -> LoadResult:
    """`requests` batch-1 runs spread over `clients` threads (ORT releases the GIL while it runs)."""
    feeds = [{card.input.name: canvas[None]} for canvas in canvases]
    outputs = [card.outputs.labels.name]
    return _closed_loop(lambda index: session.run(outputs, feeds[index % len(feeds)]), clients, requests)


def run_in_process(session: ort.InferenceSession, card: ModelCard, bodies: list[bytes], clients: int,
                   requests: int) -> LoadResult:
    """`requests` runs of `segment_png` on the encoded `bodies` (cycled), spread over `clients` threads."""
    return _closed_loop(lambda index: segment_png(session, card, bodies[index % len(bodies)]), clients, requests)


def _closed_loop(work: Callable[[int], object], clients: int, requests: int) -> LoadResult:
    """`work(index)` for indices 0..requests-1 from `clients` threads, each taking the next index when done;
    one unmeasured `work` per client first (warm-up)."""
    for index in range(clients):
        work(index)
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
            work(index)
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
