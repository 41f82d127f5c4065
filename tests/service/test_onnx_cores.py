"""The ONNX CPU backend's split of the cores: a run alone gets every core, runs side by side a share each."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from service.backends import onnx as onnx_backend
from service.backends.onnx import OnnxBackend
from service.settings import OnnxSettings


def backend_for(card, **settings) -> OnnxBackend:
    return OnnxBackend(card, OnnxSettings(**settings), use_cuda=False)


def canvas(card, value: int = 0) -> np.ndarray:
    rng = np.random.default_rng(value)
    return rng.integers(0, 256, (1, *card.input_size, 3), dtype=np.uint8)


@pytest.mark.parametrize(("settings", "cores", "runs", "threads"), [
    ({}, 2, 2, 1),  # these machines: one core per run
    ({}, 16, 2, 8),
    ({}, 16, 4, 4),
    ({}, 2, 4, 1),  # more runs than cores: one thread each, never zero
    ({}, 2, 1, None),  # one run at a time: nothing to split
    ({"split_cores": False}, 16, 2, None),
    ({"intra_op_threads": 1}, 16, 2, None),  # one thread already: a split would not change it
    ({"intra_op_threads": 4}, 16, 2, 2),  # the operator's thread count is what is split, not the machine's
])
def test_threads_per_run_split_the_all_core_count(segmentation_model, monkeypatch, settings, cores, runs, threads):
    monkeypatch.setattr(onnx_backend, "usable_cores", lambda: cores)
    backend = backend_for(segmentation_model, **settings)
    try:
        assert backend.sharing_threads(runs) == threads
    finally:
        backend.close()


class _Recorder:
    """Stands in for one of the backend's sessions: records that it ran, optionally holding the run open."""

    def __init__(self, session, name: str, log: list[str], hold: threading.Event | None = None):
        self._session, self._name, self._log, self._hold = session, name, log, hold
        self.entered = threading.Event()

    def run(self, *args):
        self._log.append(self._name)
        self.entered.set()
        if self._hold is not None:
            self._hold.wait(10)
        return self._session.run(*args)


def test_a_run_alone_gets_every_core_and_a_run_beside_it_the_sharing_session(segmentation_model, monkeypatch):
    monkeypatch.setattr(onnx_backend, "usable_cores", lambda: 2)
    backend = backend_for(segmentation_model)
    try:
        image = canvas(segmentation_model)
        backend.prepare(image, concurrent_runs=2)
        log: list[str] = []
        hold = threading.Event()
        backend._session = whole = _Recorder(backend._session, "all cores", log, hold)
        backend._sharing_session = _Recorder(backend._sharing_session, "shared", log)

        first = threading.Thread(target=backend.infer, args=(image, False))
        first.start()
        assert whole.entered.wait(10)
        backend.infer(image, want_probabilities=False)  # starts while the first is in inference
        hold.set()
        first.join()
        backend.infer(image, want_probabilities=False)  # alone again
        assert log == ["all cores", "shared", "all cores"]
    finally:
        backend.close()


def test_both_sessions_give_the_same_answer(segmentation_model, monkeypatch):
    monkeypatch.setattr(onnx_backend, "usable_cores", lambda: 2)
    backend = backend_for(segmentation_model)
    try:
        images = np.concatenate([canvas(segmentation_model, seed) for seed in range(2)])
        alone = backend.infer(images, want_probabilities=True)
        backend.prepare(images, concurrent_runs=2)
        shared = backend._run(backend._sharing_session, images, want_probabilities=True)
        np.testing.assert_array_equal(shared.labels, alone.labels)
        np.testing.assert_allclose(shared.probabilities, alone.probabilities, atol=1e-5)
    finally:
        backend.close()


def test_without_a_split_the_warm_up_runs_the_one_session_side_by_side(segmentation_model):
    backend = backend_for(segmentation_model, split_cores=False)
    try:
        result = backend.prepare(canvas(segmentation_model), concurrent_runs=2)
        assert result.labels.shape == (1, *segmentation_model.input_size) and result.probabilities is not None
        assert backend._sharing_session is None
    finally:
        backend.close()
