"""Counting calls that run at the same moment, for tests of how many inferences run side by side."""

from __future__ import annotations

import threading


class InFlight:
    """`with in_flight:` around a call; `most` is the largest number of calls seen inside at once."""

    def __init__(self):
        self._lock = threading.Lock()
        self._now = 0
        self.most = 0

    def __enter__(self) -> InFlight:
        with self._lock:
            self._now += 1
            self.most = max(self.most, self._now)
        return self

    def __exit__(self, *exc) -> None:
        with self._lock:
            self._now -= 1
