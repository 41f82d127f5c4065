"""SIGTERM during sustained load from keep-alive clients (as a proxy's connection pool would send it):
readiness turns 503 first, every request already sent or sent during the grace completes with 200,
and the process exits 0."""

from __future__ import annotations

import threading
import time

import httpx

CLIENTS = 4
GRACE_S = 2.0
BALANCER_REACTION_S = 0.5  # how long after readiness fails the clients keep sending: well inside the grace


def test_sigterm_under_load_flips_readiness_first_completes_every_request_and_exits_0(service_factory,
                                                                                      camvid_image):
    server = service_factory(env={"SEG_DRAIN_GRACE_S": str(GRACE_S)})
    data = camvid_image.read_bytes()
    stop = threading.Event()
    records: list[tuple[float, float, int | str]] = []  # (sent, answered, status or transport error)

    def send_one(client: httpx.Client) -> None:
        sent = time.monotonic()
        try:
            outcome = client.post("/segment", content=data, headers={"Content-Type": "image/png"}).status_code
        except httpx.TransportError as exc:
            outcome = type(exc).__name__
        records.append((sent, time.monotonic(), outcome))

    def send_during_grace() -> None:
        with httpx.Client(base_url=server.url, timeout=120) as client:
            send_one(client)

    def client_loop() -> None:
        with httpx.Client(base_url=server.url, timeout=120) as client:
            while not stop.is_set():
                send_one(client)

    threads = [threading.Thread(target=client_loop) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    while len(records) < 2 * CLIENTS:  # the load is established
        time.sleep(0.02)
    terminated_at = time.monotonic()
    server.process.send_signal(15)
    readiness = server.wait_until(lambda response: response.status_code != 200, timeout_s=5)
    flipped_at = time.monotonic()
    late = threading.Thread(target=send_during_grace)
    late.start()
    time.sleep(BALANCER_REACTION_S)
    stop.set()
    for thread in (*threads, late):
        thread.join(timeout=120)
    exit_code = server.process.wait(timeout=60)

    assert readiness.status_code == 503 and readiness.json()["status"] == "draining"
    assert flipped_at - terminated_at < 1.0
    in_flight = [record for record in records if record[0] < terminated_at < record[1]]
    during_grace = [record for record in records if record[0] > flipped_at]
    assert in_flight and during_grace, "the load did not overlap the signal and the grace"
    assert [outcome for *_, outcome in records] == [200] * len(records), records
    assert exit_code == 0, server.logs()
    assert "Traceback" not in server.logs()
