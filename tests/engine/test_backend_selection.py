"""``--backend auto`` takes TensorRT only where a plan matching this GPU exists; otherwise the
reason is kept and ONNX Runtime serves."""

import logging

import pytest

from service.backends import SPECS, BackendUnavailable, load_backend
from service.backends.tensorrt import backend as trt_backend
from service.backends.tensorrt.sidecar import write_sidecar
from service.settings import BackendName, Settings


@pytest.fixture
def gpu_host(monkeypatch, h200, tmp_path):
    """This machine as if it had TensorRT and an H200, with an empty engine cache."""
    monkeypatch.setattr(trt_backend, "_tensorrt_installed", lambda: True)
    monkeypatch.setattr(trt_backend, "current_platform", lambda device: h200)
    cache = tmp_path / "engine-cache"
    cache.mkdir()
    monkeypatch.setenv(trt_backend.ENGINE_CACHE_ENV, str(cache))
    return cache


def test_tensorrt_is_tried_first():
    assert SPECS[0].name == "tensorrt"


def test_every_backend_name_but_auto_is_one_engine():
    assert sorted(spec.name for spec in SPECS) == sorted(set(BackendName) - {BackendName.AUTO})
    assert Settings(backend="onnx-cpu").backend is BackendName.ONNX_CPU


def test_without_tensorrt_the_reason_says_what_to_install(exported_card, monkeypatch):
    monkeypatch.setattr(trt_backend, "_tensorrt_installed", lambda: False)
    assert "TensorRT is not installed" in trt_backend.tensorrt_unavailable(exported_card, Settings())


def test_without_a_matching_plan_the_reason_gives_the_build_command(exported_card, gpu_host, make_sidecar):
    stale = make_sidecar(onnx_sha256="0" * 64)
    (gpu_host / exported_card.files.onnx.replace(".onnx", ".plan")).write_bytes(b"PLAN")
    write_sidecar(stale, gpu_host / exported_card.files.onnx.replace(".onnx", ".plan"))
    reason = trt_backend.tensorrt_unavailable(exported_card, Settings())
    assert "no plan built for this GPU and TensorRT" in reason and "the model card now lists" in reason
    assert f"python build_engine.py {exported_card.onnx_path} -o {gpu_host}" in reason
    with pytest.raises(BackendUnavailable, match="backend tensorrt cannot serve"):
        load_backend(exported_card, Settings(backend="tensorrt"))


def test_a_matching_plan_in_the_cache_is_chosen(exported_card, gpu_host, make_sidecar, monkeypatch):
    plan = gpu_host / exported_card.files.onnx.replace(".onnx", ".plan")
    plan.write_bytes(b"PLAN")
    write_sidecar(make_sidecar(onnx_sha256=exported_card.files.onnx_sha256), plan)
    assert trt_backend.tensorrt_unavailable(exported_card, Settings()) is None
    opened = {}
    monkeypatch.setattr(trt_backend, "TensorRTBackend",
                        lambda path, card, **options: opened.update(path=path, card=card, **options) or "backend")
    settings = Settings(backend="auto", batching={"max_batch_size": 16})
    assert load_backend(exported_card, settings) == "backend"
    assert opened == {"path": plan, "card": exported_card, "max_batch_size": 16, "device": 0}


def test_the_plan_is_matched_against_the_configured_gpu_not_gpu_0(exported_card, gpu_host, make_sidecar,
                                                                   monkeypatch, h200):
    """GPU 0 an L4, GPU 1 the H200 the plan was built on: serving on GPU 1 must find the plan."""
    from service.backends.tensorrt.sidecar import Platform

    l4 = Platform(h200.tensorrt_version, "NVIDIA L4", "8.9")
    monkeypatch.setattr(trt_backend, "current_platform", lambda device: {0: l4, 1: h200}[device])
    plan = gpu_host / exported_card.files.onnx.replace(".onnx", ".plan")
    plan.write_bytes(b"PLAN")
    write_sidecar(make_sidecar(onnx_sha256=exported_card.files.onnx_sha256), plan)
    on_gpu1 = Settings(onnx={"cuda_device_id": 1})
    assert trt_backend.tensorrt_unavailable(exported_card, on_gpu1) is None
    assert "built on NVIDIA H200" in trt_backend.tensorrt_unavailable(exported_card, Settings())
    opened = {}
    monkeypatch.setattr(trt_backend, "TensorRTBackend", lambda path, card, **options: opened.update(options))
    trt_backend.load_tensorrt(exported_card, on_gpu1)
    assert opened["device"] == 1


def test_auto_falls_back_to_onnx_runtime_when_tensorrt_cannot_load(exported_card, gpu_host, make_sidecar, monkeypatch,
                                                                   caplog):
    plan = gpu_host / exported_card.files.onnx.replace(".onnx", ".plan")
    plan.write_bytes(b"PLAN")
    write_sidecar(make_sidecar(onnx_sha256=exported_card.files.onnx_sha256), plan)

    def broken(*args, **kwargs):
        raise trt_backend.TensorRTError("deserialize failed")

    monkeypatch.setattr(trt_backend, "TensorRTBackend", broken)
    with caplog.at_level(logging.WARNING, logger="service.backends"):
        backend = load_backend(exported_card, Settings(backend="auto"))
    try:
        assert backend.name == "onnx-cpu"
    finally:
        backend.close()
    # the GPU host that ends up on ONNX Runtime says why, instead of falling back silently
    assert "not on tensorrt: failed to load: deserialize failed" in caplog.text


def test_int8_is_chosen_per_model_and_runs_on_onnx_runtime_only(exported_card):
    settings = Settings(backend="tensorrt", model_precision={exported_card.name: "int8"})
    assert settings.precision_for(exported_card.name) == "int8" and settings.precision_for("other") == "fp32"
    with pytest.raises(BackendUnavailable, match="runs no INT8 ONNX files"):
        load_backend(exported_card, settings)
