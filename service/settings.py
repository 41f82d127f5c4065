"""The one settings object: every knob comes from a flag, a `SEG_*` environment variable, or its default.

Nested groups use `__` in the environment (`SEG_CRF__ITERATIONS=10`) and a dot on the command
line (`--crf.iterations 10`). `python -m service` exports the resolved flags back into the
environment, so `--workers N` processes (which re-read the environment) see the same values.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "SEG_"
BackendChoice = Literal["auto", "tensorrt", "onnx-cuda", "onnx-cpu"]
ModelControl = Literal["none", "poll", "explicit"]


class OnnxSettings(BaseModel):
    """ONNX Runtime session knobs (both the CPU and the CUDA execution provider)."""

    intra_op_threads: int = Field(0, ge=0, description="Threads inside one operator; 0 = one per core.")
    inter_op_threads: int = Field(1, ge=0, description="Threads across operators (sequential graph: 1).")
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
    """Dynamic batching; unset values take the backend's measured default (see service/batching.py)."""

    max_batch_size: int | None = Field(None, ge=1, description="Requests run together at most.")
    max_delay_ms: float | None = Field(None, ge=0, description="How long a batch waits to fill.")
    max_queue_size: int = Field(32, ge=1, description="Queued requests per model before 503.")
    request_timeout_s: float = Field(30.0, gt=0, description="Deadline from arrival to inference result (504).")


class LimitSettings(BaseModel):
    """Input limits, checked before any expensive work."""

    max_body_bytes: int = Field(20 * 1024 * 1024, ge=1, description="Largest request body (413).")
    max_image_pixels: int = Field(
        40_000_000, ge=1, description="Largest width x height, read from the image header before decoding (413)."
    )
    max_batch_images: int = Field(16, ge=1, description="Images in one POST /segment/batch (413 past it).")


class CrfSettings(BaseModel):
    """Dense-CRF refinement (Krähenbühl & Koltun 2011); defaults from the seed: bilateral weight 10, 3/3."""

    workers: int = Field(1, ge=1, description="CRF worker processes (pydensecrf holds the GIL).")
    max_pending: int = Field(16, ge=1, description="Refinements waiting for a worker before 503.")
    iterations: int = Field(5, ge=1, le=50, description="Mean-field iterations.")
    gaussian_sxy: float = Field(3.0, gt=0, description="Smoothness kernel: spatial std in pixels.")
    gaussian_compat: float = Field(3.0, ge=0, description="Smoothness kernel weight.")
    bilateral_sxy: float = Field(3.0, gt=0, description="Appearance kernel: spatial std in pixels.")
    bilateral_srgb: float = Field(3.0, gt=0, description="Appearance kernel: colour std.")
    bilateral_compat: float = Field(10.0, ge=0, description="Appearance kernel weight.")


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
    backend: BackendChoice = Field("auto", description="auto prefers TensorRT, then ONNX CUDA, then ONNX CPU.")
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

    def to_env(self) -> dict[str, str]:
        """The settings as `SEG_*` variables, so worker processes rebuild exactly this object."""
        env: dict[str, str] = {}
        for key, value in self.model_dump(mode="json").items():
            if isinstance(value, dict):
                for sub_key, sub_value in value.items():
                    if sub_value is not None:
                        env[f"{ENV_PREFIX}{key}__{sub_key}".upper()] = str(sub_value)
            elif value is not None:
                env[f"{ENV_PREFIX}{key}".upper()] = str(value)
        if self.auth.api_key is not None:
            env[f"{ENV_PREFIX}AUTH__API_KEY"] = self.auth.api_key.get_secret_value()
        return env
