"""Card discovery: what the registry reports before any engine loads."""

from __future__ import annotations

import json
import shutil
import time

import numpy as np
import pytest

from modelcard.card import load_card
from modelcard.files import find_cards
from service.backends import Backend, InferenceResult
from service.batching import BatchPolicy
from service.errors import ServiceError
from service.registry import ModelRegistry, warm_up
from service.settings import Settings
from tests.support.concurrency import InFlight


def discovered(models, **settings) -> ModelRegistry:
    registry = ModelRegistry(Settings(models=models, **settings))
    registry.discover()
    return registry


def test_a_missing_models_directory_is_a_problem_not_a_crash(tmp_path):
    registry = discovered(tmp_path / "nowhere")
    assert "does not exist" in registry.problem and not registry.ready
    with pytest.raises(ServiceError) as refused:
        registry.get(None)
    assert refused.value.status == 503 and refused.value.code == "no_models"


def test_an_empty_models_directory_says_so(tmp_path):
    assert "no model cards" in discovered(tmp_path).problem


def test_cards_are_found_by_name_and_plan_sidecars_are_not_cards(segmentation_model, tmp_path):
    shutil.copy2(segmentation_model.path, tmp_path / "b.json")
    (tmp_path / "a.plan.json").write_text("{}")
    (tmp_path / "c.json").write_text("{}")
    assert [path.name for path in find_cards(tmp_path)] == ["b.json", "c.json"]
    registry = discovered(tmp_path)
    assert registry.models[segmentation_model.name].status == "loading"
    assert registry.models["c"].status == "failed" and "c.json" in registry.models["c"].error


def test_two_cards_with_one_name_fail_the_second(segmentation_model, tmp_path):
    for name in ("first.json", "second.json"):
        shutil.copy2(segmentation_model.path, tmp_path / name)
    registry = discovered(tmp_path)
    failed = [model for model in registry.models.values() if model.status == "failed"]
    assert len(failed) == 1 and "used by another card" in failed[0].error


def test_default_model_must_have_a_card(segmentation_model, tmp_path):
    shutil.copy2(segmentation_model.path, tmp_path / segmentation_model.path.name)
    assert "no card" in discovered(tmp_path, default_model="nope").problem
    registry = discovered(tmp_path, default_model=segmentation_model.name)
    assert registry.problem is None and registry.default_name() == segmentation_model.name
    with pytest.raises(ServiceError) as unknown:
        registry.get("nope")
    assert unknown.value.status == 404
    with pytest.raises(ServiceError) as loading:
        registry.get(None)
    assert loading.value.status == 503 and loading.value.code == "model_loading"


def test_card_json_is_kept_verbatim_for_the_api(segmentation_model, tmp_path):
    shutil.copy2(segmentation_model.path, tmp_path / segmentation_model.path.name)
    card = discovered(tmp_path).models[segmentation_model.name].card
    assert card.to_json() == json.loads(segmentation_model.path.read_text())


def test_warm_up_runs_as_many_batches_at_once_as_will_run_at_once(segmentation_model):
    """Each run in flight holds its own activations: the arena must reach that size before traffic."""
    card = load_card(segmentation_model.path)

    class CountingBackend(Backend):
        name, precision, max_batch_size = "onnx-cpu", "fp32", 4

        def __init__(self):
            self.in_flight, self.batches = InFlight(), []

        def infer(self, images, want_probabilities):
            with self.in_flight:
                self.batches.append(len(images))
                time.sleep(0.1)
            labels = np.zeros(images.shape[:3], np.uint8)
            probabilities = np.zeros((*images.shape[:3], card.num_classes), np.float32)
            return InferenceResult(labels, probabilities if want_probabilities else None)

        def close(self):
            pass

    backend = CountingBackend()
    warm_up(backend, card, BatchPolicy(max_batch_size=3, max_delay_ms=0, max_queue_size=4, timeout_s=1,
                                       concurrent_batches=2))
    assert backend.in_flight.most == 2 and backend.batches == [3, 3, 3]


def test_a_backend_that_fails_its_warm_up_is_closed(segmentation_model, tmp_path, monkeypatch):
    """Its device memory (a TensorRT engine, pinned buffers) is released, not leaked until exit."""
    import asyncio

    from service import registry as registry_module

    class FailingWarmUp(Backend):
        name, precision, max_batch_size, closed = "tensorrt", "fp16", 4, False

        def infer(self, images, want_probabilities):
            raise RuntimeError("execute_async_v3 failed")

        def close(self):
            self.closed = True

    backend = FailingWarmUp()
    monkeypatch.setattr(registry_module, "load_backend_checked", lambda card, settings: backend)
    shutil.copy2(segmentation_model.path, tmp_path / segmentation_model.path.name)
    registry = discovered(tmp_path)
    asyncio.run(registry.load_all())
    model = registry.models[segmentation_model.name]
    assert model.status == "failed" and "execute_async_v3 failed" in model.error
    (entry,) = model.attempts.values()
    assert backend.closed and entry.loaded is None and not model.serving


def test_a_card_naming_an_unknown_crf_preset_fails_to_load_saying_which(segmentation_model, tmp_path):
    import asyncio

    card = json.loads(segmentation_model.path.read_text())
    card["crf"] = {"preset": "sharpest", "metric": "dice", "split": "val", "images": 1, "scores": {}, "command": "x"}
    (tmp_path / segmentation_model.path.name).write_text(json.dumps(card))
    for path in segmentation_model.model_files:
        shutil.copy2(path, tmp_path / path.name)
    registry = discovered(tmp_path)
    asyncio.run(registry.load_all())
    model = registry.models[segmentation_model.name]
    assert model.status == "failed" and "crf.preset 'sharpest'" in model.error
