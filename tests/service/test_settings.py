"""One settings object: flags over `SEG_*` environment over defaults, and a faithful trip through the environment."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from service.settings import CRF_PARAMETERS, CRF_PRESETS, CrfSettings, Settings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    for key in [key for key in os.environ if key.startswith("SEG_")]:
        monkeypatch.delenv(key)


def test_flags_override_environment_which_overrides_defaults(monkeypatch):
    monkeypatch.setenv("SEG_PORT", "9001")
    monkeypatch.setenv("SEG_WORKERS", "3")
    monkeypatch.setenv("SEG_CRF__ITERATIONS", "7")
    settings = Settings(_cli_parse_args=["--port", "9002", "--models", "/srv/models", "--backend", "onnx-cpu",
                                         "--batching.max-delay-ms", "2.5"])
    assert settings.port == 9002 and settings.workers == 3 and settings.crf.iterations == 7
    assert settings.models == Path("/srv/models") and settings.backend == "onnx-cpu"
    assert settings.batching.max_delay_ms == 2.5 and settings.batching.max_batch_size is None
    assert Settings().host == "127.0.0.1" and Settings().models == Path("engines")


def test_environment_round_trip_rebuilds_the_same_settings(monkeypatch):
    settings = Settings(_cli_parse_args=["--workers", "2", "--auth.api-key", "s3cret", "--default-model", "polyp",
                                         "--onnx.cpu-mem-arena", "false", "--limits.max-image-pixels", "123"])
    for key, value in settings.to_env().items():
        monkeypatch.setenv(key, value)
    rebuilt = Settings()
    assert rebuilt == settings
    assert rebuilt.auth.api_key.get_secret_value() == "s3cret"


@pytest.mark.parametrize(("variable", "value"), [("SEG_BACKEND", "cuda"), ("SEG_WORKERS", "0"),
                                               ("SEG_CRF__ITERATIONS", "0"), ("SEG_LIMITS__MAX_BODY_BYTES", "lots")])
def test_bad_values_fail_at_start_naming_the_setting(monkeypatch, variable, value):
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError) as caught:
        Settings()
    assert variable.removeprefix("SEG_").lower().split("__")[-1] in str(caught.value)


def test_a_crf_preset_fills_the_fields_it_is_not_told(monkeypatch):
    monkeypatch.setenv("SEG_CRF__PRESET", "seed")
    settings = Settings(_cli_parse_args=["--crf.iterations", "2"])
    seed = CRF_PRESETS["seed"]
    assert settings.crf.iterations == 2 and settings.crf.scale == seed["scale"]
    assert settings.crf.bilateral_compat == seed["bilateral_compat"] != CRF_PRESETS["fast"]["bilateral_compat"]
    assert CrfSettings().model_dump(include=set(CRF_PRESETS["fast"])) == CRF_PRESETS["fast"]


def test_each_model_starts_from_its_own_crf_preset_unless_the_operator_sets_one(monkeypatch):
    default = CrfSettings()
    assert default.preset is None and default.for_model(None) is default
    assert default.model_dump(include=set(CRF_PARAMETERS)) == CRF_PRESETS["fast"]
    assert default.for_model("gentle").model_dump(include=set(CRF_PARAMETERS)) == CRF_PRESETS["gentle"]
    operator = CrfSettings(preset="seed")
    assert operator.for_model("gentle") is operator
    told = Settings(_cli_parse_args=["--crf.iterations", "7"])
    for settings in (told, None):  # None: a worker process, rebuilt from the exported environment
        if settings is None:
            for key, value in told.to_env().items():
                monkeypatch.setenv(key, value)
            settings = Settings()
        seed = settings.crf.for_model("seed")
        assert seed.iterations == 7 and seed.scale == CRF_PRESETS["seed"]["scale"]
        assert seed.bilateral_compat == CRF_PRESETS["seed"]["bilateral_compat"]
