"""Soak: SOAK_REQUESTS requests (`make soak`: 10,000) of mixed kinds from a few keep-alive clients; after
warm-up the server tree's median resident memory grows less than 5 % (first vs last quarter of the
samples) and its open file descriptors do not grow.

Skipped unless SOAK_REQUESTS is set: it runs for minutes (tiny models) to most of an hour (512x512
models on 2 CPU cores). Bounded by SOAK_MAX_SECONDS (default 3600) and loopback only.
"""

from __future__ import annotations

import io
import itertools
import os
import statistics
import threading
import time

import httpx
import pytest
from PIL import Image

from benchmarks.procfs import open_fds, resident_bytes

REQUESTS = int(os.environ.get("SOAK_REQUESTS", "0"))
MAX_SECONDS = float(os.environ.get("SOAK_MAX_SECONDS", "3600"))
CLIENTS = 4
WARM_UP_SHARE = 0.1
MAX_GROWTH = 0.05

pytestmark = [pytest.mark.skipif(REQUESTS <= 0, reason="soak runs only with SOAK_REQUESTS set (make soak)"),
              pytest.mark.timeout(MAX_SECONDS + 300)]


def request_kinds(kvasir_images, camvid_image, models: list[str]) -> list[dict]:
    """Small images (the per-request path, not the model, is what can leak), both formats, every model,
    raw and multipart, and CRF now and then."""
    bodies = []
    for path in (*kvasir_images, camvid_image):
        with Image.open(path) as image:
            small = image.convert("RGB").resize((160, 120))
        for fmt, kind in (("JPEG", "image/jpeg"), ("PNG", "image/png")):
            buffer = io.BytesIO()
            small.save(buffer, format=fmt)
            bodies.append((buffer.getvalue(), kind))
    kinds = []
    for index, ((data, kind), model, output) in enumerate(itertools.product(bodies, models, ("png", "rle"))):
        params = {"model": model, "format": output, "crf": str(index % 10 == 0).lower()}
        if index % 2:
            kinds.append({"params": params, "files": {"image": ("upload", data, kind)}})
        else:
            kinds.append({"params": params, "content": data, "headers": {"Content-Type": kind}})
    return kinds


@pytest.mark.usefixtures("requires_procfs")
def test_soak_memory_and_file_descriptors_stay_flat(service_factory, cards, kvasir_images, camvid_image):
    server = service_factory()
    pid = server.process.pid
    kinds = request_kinds(kvasir_images, camvid_image, sorted(cards))
    warm_up = max(int(REQUESTS * WARM_UP_SHARE), len(kinds))
    deadline = time.monotonic() + MAX_SECONDS
    lock = threading.Lock()
    sent = done = 0
    failures: list[str] = []

    def client_loop() -> None:
        nonlocal sent, done
        with httpx.Client(base_url=server.url, timeout=120) as client:
            while time.monotonic() < deadline:
                with lock:
                    if sent >= REQUESTS:
                        return
                    index, sent = sent, sent + 1
                try:
                    response = client.post("/segment", **kinds[index % len(kinds)])
                    problem = None if response.status_code == 200 else f"{response.status_code} {response.text[:200]}"
                except httpx.HTTPError as exc:
                    problem = repr(exc)
                with lock:
                    done += 1
                    if problem:
                        failures.append(f"request {index}: {problem}")

    threads = [threading.Thread(target=client_loop) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    samples: list[tuple[int, int, int]] = []  # (requests done, resident bytes, open fds) after warm-up
    while any(thread.is_alive() for thread in threads):
        time.sleep(1)
        if done >= warm_up:
            samples.append((done, resident_bytes(pid), open_fds(pid)))
            if len(samples) % 60 == 1:
                print(f"soak: {done}/{REQUESTS} requests, resident {samples[-1][1] / 2**20:.1f} MiB, "
                      f"fds {samples[-1][2]}", flush=True)
    for thread in threads:
        thread.join()
    final = (done, resident_bytes(pid), open_fds(pid))

    assert not failures, failures[:10]
    assert done == REQUESTS, f"only {done} of {REQUESTS} requests within {MAX_SECONDS:.0f} s"
    assert samples, "the soak finished before any sample after warm-up"
    baseline = samples[0]
    # Resident memory of 512x512 models swings by about +-10 % between one-second samples (ORT's
    # arena, the CRF workers), so a leak is a rise of the median from the first to the last quarter.
    quarter = max(1, len(samples) // 4)
    early = statistics.median(s[1] for s in samples[:quarter])
    late = statistics.median([s[1] for s in samples[-quarter:]] + [final[1]])
    growth = late / early - 1
    print(f"soak: {done} requests; median resident after warm-up ({baseline[0]}) {early / 2**20:.1f} -> "
          f"last quarter {late / 2**20:.1f} MiB ({growth:+.1%}), peak {max(s[1] for s in samples) / 2**20:.1f} "
          f"MiB; open fds {baseline[2]} -> {final[2]}")
    assert growth < MAX_GROWTH, f"resident memory grew {growth:.1%} after warm-up: {samples[::10]}"
    assert final[2] <= baseline[2], f"file descriptors grew from {baseline[2]} to {final[2]}"
