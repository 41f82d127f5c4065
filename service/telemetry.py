"""Prometheus metrics and the per-request `Server-Timing` breakdown.

Metric names follow Prometheus conventions (base units, `_seconds`, `_total` on counters). With
`--workers N` every process writes its samples to `PROMETHEUS_MULTIPROC_DIR` (set by
`python -m service` before any worker starts, because prometheus-client picks its storage when
it is first imported) and `/metrics` merges them; gauges say how they merge (`livesum`: only
live processes count).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.5, 5.0, 10.0, 30.0)
STAGES = ("decode", "preprocess", "queue", "infer", "crf", "encode")

REQUESTS = Counter(
    "seg_http_requests", "HTTP requests answered, by route template, method and status.", ["route", "method", "status"]
)
REQUEST_DURATION = Histogram(
    "seg_http_request_duration_seconds",
    "Time from request start to the last response byte, by route template.",
    ["route", "method"],
    buckets=LATENCY_BUCKETS,
)
IN_FLIGHT = Gauge("seg_http_requests_in_flight", "HTTP requests being handled.", multiprocess_mode="livesum")
QUEUE_WAIT = Histogram(
    "seg_queue_wait_seconds", "Time a request waited in its model's queue.", ["model"], buckets=LATENCY_BUCKETS
)
QUEUE_DEPTH = Gauge("seg_queue_depth", "Requests waiting in a model's queue.", ["model"], multiprocess_mode="livesum")
INFERENCE_DURATION = Histogram(
    "seg_inference_duration_seconds", "Backend time for one batch.", ["model", "version", "backend"],
    buckets=LATENCY_BUCKETS,
)
INFERENCE_FAILURES = Counter(
    "seg_inference_failures", "Batches whose backend call raised (every request in them got a 500).",
    ["model", "version", "backend"],
)
BATCH_SIZE = Histogram(
    "seg_inference_batch_size", "Requests per inference batch.", ["model"], buckets=(1, 2, 4, 8, 16, 32, 64)
)
STAGE_DURATION = Histogram(
    "seg_stage_duration_seconds",
    "Per-request time in a pipeline stage (decode, preprocess, crf, encode).",
    ["stage", "model"],
    buckets=LATENCY_BUCKETS,
)
AREA_BUCKETS = (0.0, 0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)
CONFIDENCE_BUCKETS = (0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.925, 0.95, 0.96, 0.97, 0.98, 0.99, 1.0)
PREDICTED_AREA = Histogram(
    "seg_predicted_area_ratio", "Share of an image's pixels predicted as a class (one sample per image and class).",
    ["model", "version", "class"], buckets=AREA_BUCKETS,
)
IMAGE_CONFIDENCE = Histogram(
    "seg_image_confidence_ratio", "Mean per-pixel confidence of an image: 1 - entropy / ln(classes).",
    ["model", "version"], buckets=CONFIDENCE_BUCKETS,
)
LOW_CONFIDENCE_IMAGES = Counter(
    "seg_low_confidence_images", "Images whose mean confidence fell below the drift threshold.",
    ["model", "version"],
)
MODEL_INFO = Gauge(
    "seg_model_info", "Model versions loaded (1) or released (0), with their backend and precision.",
    ["model", "version", "backend", "precision"], multiprocess_mode="max",
)
MODEL_LOADS = Counter(
    "seg_model_loads", "Attempts to load a model version, by result (success, failure).", ["model", "result"]
)
_PER_REQUEST_STAGES = ("decode", "preprocess", "crf", "encode")  # queue and infer have their own metrics


def record_image(model: str, version: int, class_names: list[str], area_fractions, mean_confidence: float,
                 low_confidence_threshold: float) -> None:
    """One image's drift signals (service/uncertainty.py computes them), per version so a new one can be
    compared with the one it replaces."""
    labels = {"model": model, "version": str(version)}
    for name, fraction in zip(class_names, area_fractions, strict=True):
        PREDICTED_AREA.labels(**labels, **{"class": name}).observe(float(fraction))
    IMAGE_CONFIDENCE.labels(**labels).observe(mean_confidence)
    low = LOW_CONFIDENCE_IMAGES.labels(**labels)  # the series exists (at 0) from the first image on
    if mean_confidence < low_confidence_threshold:
        low.inc()


def multiprocess_enabled() -> bool:
    return bool(os.environ.get(MULTIPROC_ENV))


def render_metrics() -> tuple[bytes, str]:
    """The exposition text (merged across worker processes in multiprocess mode) and its content type."""
    if multiprocess_enabled():
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def process_exiting() -> None:
    """Drop this process's live gauges from the merged view (multiprocess mode only)."""
    if multiprocess_enabled():
        multiprocess.mark_process_dead(os.getpid())


class Timings:
    """Stage durations of one request: fed to the stage histogram and the `Server-Timing` header."""

    def __init__(self, model: str):
        self.model = model
        self.seconds: dict[str, float] = {}

    @contextmanager
    def measure(self, stage: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.record(stage, time.perf_counter() - start)

    def record(self, stage: str, seconds: float) -> None:
        if stage not in STAGES:
            raise ValueError(f"unknown stage {stage!r}; stages are {STAGES}")
        self.seconds[stage] = self.seconds.get(stage, 0.0) + seconds
        if stage in _PER_REQUEST_STAGES:
            STAGE_DURATION.labels(stage=stage, model=self.model).observe(seconds)

    def server_timing(self) -> str:
        """`Server-Timing` header value (milliseconds), stages in pipeline order."""
        return ", ".join(
            f"{stage};dur={self.seconds[stage] * 1000:.1f}" for stage in STAGES if stage in self.seconds
        )
