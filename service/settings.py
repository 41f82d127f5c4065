"""The one settings object: every knob comes from a flag, a `SEG_*` environment variable, or its default.

Nested groups use `__` in the environment (`SEG_CRF__ITERATIONS=10`) and a dot on the command
line (`--crf.iterations 10`). `python -m service` exports the resolved flags back into the
environment, so `--workers N` processes (which re-read the environment) see the same values.
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, Field, PrivateAttr, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from modelcard.card import Precision

ENV_PREFIX = "SEG_"


class BackendName(StrEnum):
    """Every engine's name, as `--backend` takes it and as X-Backend, /v1/models and the metrics report it.

    AUTO is a choice, never an engine: it takes the first engine in `service.backends.SPECS` that loads."""

    AUTO = "auto"
    TENSORRT = "tensorrt"
    ONNX_CUDA = "onnx-cuda"
    ONNX_CPU = "onnx-cpu"


# A Literal of the values, turned into the member: pydantic-settings' --help would list an enum by its
# member names (AUTO), which the flag does not take.
BackendChoice = Annotated[Literal[tuple(name.value for name in BackendName)], AfterValidator(BackendName)]
ModelControl = Literal["none", "poll", "explicit"]


class OnnxSettings(BaseModel):
    """ONNX Runtime session knobs (both the CPU and the CUDA execution provider)."""

    intra_op_threads: int = Field(0, ge=0, description="Threads inside one operator; 0 = one per core.")
    inter_op_threads: int = Field(1, ge=0, description="Threads across operators (sequential graph: 1).")
    spinning: bool = Field(
        False, description="Intra-op threads spin-wait for work instead of sleeping. Off: the cores are left to "
        "decoding, encoding and other processes; measured faster on shared CPUs (docs/ARCHITECTURE.md)."
    )
    split_cores: bool = Field(
        True, description="CPU: a run that starts while another is in inference goes to a second session with the "
        "cores split between the runs in flight (cores / concurrent batches threads each), instead of every run "
        "contending for all of them; a run alone still gets every core. Measured +10-20 % throughput under load, "
        "for one more session and its arena per model (+200 MiB per bundled model at batch 1; docs/ARCHITECTURE.md).",
    )
    cpu_mem_arena: bool = Field(True, description="Pool CPU tensors in ORT's arena (faster; see arena_shrinkage).")
    arena_shrinkage: bool = Field(
        False,
        description="Give arena growth back after every run: smaller resident memory, ~25% less CPU throughput "
        "(docs/benchmarks.md). Off, the arena stays at the warm-up (largest batch) size.",
    )
    arena_extend_strategy: Literal["kSameAsRequested", "kNextPowerOfTwo"] = Field(
        "kSameAsRequested", description="How the CUDA arena grows; kSameAsRequested never over-allocates."
    )
    cuda_device_id: int = Field(0, ge=0)
    max_batch_size: int = Field(32, ge=1, description="Largest batch an ONNX session is ever given.")


class BatchingSettings(BaseModel):
    """Dynamic batching; unset values take the backend's measured default (its spec, service/backends)."""

    max_batch_size: int | None = Field(None, ge=1, description="Requests run together at most.")
    max_delay_ms: float | None = Field(None, ge=0, description="How long a batch waits to fill.")
    max_queue_size: int = Field(32, ge=1, description="Queued requests per model before 503.")
    concurrent_batches: int | None = Field(
        None, ge=1, description="Batches of one model in inference at once, where the backend allows it (ONNX Runtime "
        "does): two let one run's serial stretches overlap another's (the ONNX CPU default, measured faster at 8 "
        "clients; docs/ARCHITECTURE.md).",
    )
    request_timeout_s: float = Field(30.0, gt=0, description="Deadline from arrival to inference result (504).")


class LimitSettings(BaseModel):
    """Input limits, checked before any expensive work."""

    max_body_bytes: int = Field(20 * 1024 * 1024, ge=1, description="Largest request body (413).")
    max_image_pixels: int = Field(
        40_000_000, ge=1, description="Largest width x height, read from the image header before decoding (413)."
    )
    max_batch_images: int = Field(16, ge=1, description="Images in one POST /segment/batch (413 past it).")


CrfPreset = Literal["seed", "fast", "gentle"]
DEFAULT_CRF_PRESET: CrfPreset = "fast"
CRF_PRESETS: dict[str, dict[str, float]] = {  # measured by `python -m benchmarks.crf_quality` (docs/benchmarks.md)
    # The seed's parameters, at the model's full resolution: ~10x the cost of one inference.
    "seed": {"scale": 1.0, "iterations": 5, "gaussian_sxy": 3.0, "gaussian_compat": 3.0,
             "bilateral_sxy": 3.0, "bilateral_srgb": 3.0, "bilateral_compat": 10.0},
    # Half resolution, a wide appearance kernel (ARCHITECTURE.md's 50/5/4) and 3 iterations: below one
    # inference's cost; chosen on 40 training images per model among 15 candidates, best on camvid's val.
    "fast": {"scale": 0.5, "iterations": 3, "gaussian_sxy": 3.0, "gaussian_compat": 3.0,
             "bilateral_sxy": 50.0, "bilateral_srgb": 5.0, "bilateral_compat": 4.0},
    # fast with a quarter of its appearance weight: smooth blobs (polyp) whose edges the network already
    # follows, where a stronger CRF only shaves them (polyp val Dice: fast -0.002, this +0.0002).
    "gentle": {"scale": 0.5, "iterations": 3, "gaussian_sxy": 3.0, "gaussian_compat": 3.0,
               "bilateral_sxy": 50.0, "bilateral_srgb": 5.0, "bilateral_compat": 1.0},
}
CRF_PARAMETERS = tuple(CRF_PRESETS["seed"])  # the fields a preset sets


class CrfSettings(BaseModel):
    """Dense-CRF refinement (Krähenbühl & Koltun 2011): a named preset, any parameter overridable.

    Which preset a model's CRF starts from is `for_model`'s rule. Spatial stds are in model-input
    pixels whatever `scale` the CRF runs at."""

    workers: int = Field(1, ge=1, description="CRF worker processes (pydensecrf holds the GIL).")
    max_pending: int = Field(16, ge=1, description="Refinements waiting for a worker before 503.")
    preset: CrfPreset | None = Field(
        None, description="Parameter set the fields below start from, for every model. Unset: each model's own, "
        "measured on it (its card's crf.preset), else fast (docs/benchmarks.md).")
    scale: float = Field(gt=0, le=1, description="Resolution the CRF runs at, as a fraction of the model input's.")
    iterations: int = Field(ge=1, le=50, description="Mean-field iterations.")
    gaussian_sxy: float = Field(gt=0, description="Smoothness kernel: spatial std in pixels.")
    gaussian_compat: float = Field(ge=0, description="Smoothness kernel weight.")
    bilateral_sxy: float = Field(gt=0, description="Appearance kernel: spatial std in pixels.")
    bilateral_srgb: float = Field(gt=0, description="Appearance kernel: colour std.")
    bilateral_compat: float = Field(ge=0, description="Appearance kernel weight.")

    _given: dict[str, Any] = PrivateAttr(default_factory=dict)

    @model_validator(mode="wrap")
    @classmethod
    def _start_from_the_preset(cls, data: Any, handler: Any) -> CrfSettings:
        """Fields not given take the preset's value (an unknown preset is left for the field check);
        the parameters that were given are kept for `for_model`."""
        if not isinstance(data, dict):
            return handler(data)
        given = {key: value for key, value in data.items() if value is not None}
        preset = CRF_PRESETS.get(given.get("preset") or DEFAULT_CRF_PRESET, {})
        settings = handler({**preset, **given})
        settings._given = {key: value for key, value in given.items() if key in CRF_PARAMETERS}
        return settings

    def as_given(self) -> dict[str, Any]:
        """The fields as given, without the ones the preset filled in: rebuilds an object with the same
        `for_model` answers (what `Settings.to_env` exports for worker processes)."""
        return {**self.model_dump(mode="json", exclude=set(CRF_PARAMETERS)), **self._given}

    def for_model(self, model_preset: str | None) -> CrfSettings:
        """The CRF one model gets: the operator's `preset` when set, else the model's own (its card),
        else fast; parameters given explicitly (`--crf.iterations 10`) apply on top of any of them."""
        if self.preset is not None or model_preset is None:
            return self
        return CrfSettings(workers=self.workers, max_pending=self.max_pending, preset=model_preset, **self._given)


class DriftSettings(BaseModel):
    """Drift signals in /metrics: every image's mean confidence and predicted class areas."""

    enabled: bool = Field(
        True, description="Fetch the probabilities of every request to record them (free on ONNX Runtime CPU, "
        "measured; one extra device-to-host copy on a GPU).")
    low_confidence_threshold: float = Field(
        0.85, ge=0, le=1, description="An image whose mean confidence (1 - normalised entropy) is below this "
        "counts as low-confidence (measured: val images 0.90-0.99, shuffled or inverted CamVid 0.75-0.84; "
        "docs/UNCERTAINTY.md).")


class AuthSettings(BaseModel):
    """Optional API key; probes and metrics can stay open for orchestrators and scrapers."""

    api_key: SecretStr | None = Field(None, description="Required as `Authorization: Bearer` or `X-API-Key` when set.")
    open_probes: bool = Field(True, description="/healthz and /readyz need no key.")
    open_metrics: bool = Field(True, description="/metrics needs no key.")


class Settings(BaseSettings):
    """Everything the service can be told. Flags > environment (`SEG_...`) > defaults."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        cli_kebab_case=True,
        cli_prog_name="python -m service",
        extra="forbid",
    )

    host: str = Field("127.0.0.1", description="Address to bind.")
    port: int = Field(8000, ge=0, le=65535, description="Port to bind (0 = any free port).")
    workers: int = Field(1, ge=1, description="Server processes; metrics aggregate across them.")
    models: Path = Field(Path("engines"), description="Directory of model cards (<name>.json) and their ONNX files.")
    backend: BackendChoice = Field(
        BackendName.AUTO, description="auto prefers TensorRT, then ONNX CUDA, then ONNX CPU.")
    precision: Precision = Field(
        "fp32", description="ONNX weights every model loads: int8 = the card's INT8 variant (files.onnx_int8), "
        "served by the ONNX Runtime backends only; see docs/MODEL_CARD.md."
    )
    model_precision: dict[str, Precision] = Field(
        {}, description="Per model, over --precision: '{\"polyp\": \"int8\"}' (SEG_MODEL_PRECISION as JSON)."
    )
    default_model: str | None = Field(None, description="Model for requests without ?model= (default: first by name).")
    model_control: ModelControl = Field(
        "none", description="As Triton's: none = the models found at start-up; poll = follow changes in the models "
        "directory; explicit = change only through the load/unload API (every model is loaded at start-up).")
    repository_poll_s: float = Field(5.0, gt=0, description="Seconds between scans of the models directory (poll).")
    model_versions: int = Field(
        1, ge=1, description="How many of a model's highest versions serve (Triton's `latest` policy).")
    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"
    drain_grace_s: float = Field(
        0.0, ge=0, description="After SIGTERM, report not-ready for this long while still serving, then drain."
    )
    shutdown_timeout_s: float = Field(60.0, gt=0, description="Longest wait for in-flight requests on shutdown.")

    onnx: OnnxSettings = OnnxSettings()
    batching: BatchingSettings = BatchingSettings()
    limits: LimitSettings = LimitSettings()
    crf: CrfSettings = CrfSettings()
    drift: DriftSettings = DriftSettings()
    auth: AuthSettings = AuthSettings()

    def precision_for(self, model: str) -> Precision:
        """The weights `model` loads: its own entry in model_precision, else --precision."""
        return self.model_precision.get(model, self.precision)

    def to_env(self) -> dict[str, str]:
        """The settings as `SEG_*` variables, so worker processes rebuild exactly this object."""
        env: dict[str, str] = {}
        for key, value in self.model_dump(mode="json").items():
            if isinstance(value, dict) and not isinstance(getattr(self, key), BaseModel):
                env[f"{ENV_PREFIX}{key}".upper()] = json.dumps(value)  # a mapping (model names keep their case)
            elif isinstance(value, dict):
                group = getattr(self, key)
                for sub_key, sub_value in (group.as_given() if isinstance(group, CrfSettings) else value).items():
                    if sub_value is not None:
                        env[f"{ENV_PREFIX}{key}__{sub_key}".upper()] = str(sub_value)
            elif value is not None:
                env[f"{ENV_PREFIX}{key}".upper()] = str(value)
        if self.auth.api_key is not None:
            env[f"{ENV_PREFIX}AUTH__API_KEY"] = self.auth.api_key.get_secret_value()
        return env
