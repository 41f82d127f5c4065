"""The JSON written beside every TensorRT plan, and the rules for when a plan can be reused.

A serialized engine only runs on the TensorRT version and GPU model it was built with, and only
describes the ONNX file it was built from. The sidecar (``<plan>.json``, e.g.
``engines/polyp.plan.json``; ``engines/polyp.json`` is the model card) records all of that, so
the service and the container entrypoint can decide without TensorRT whether a plan matches.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from modelcard.files import sidecar_path
from service.backends.tensorrt.errors import EngineMismatch, SidecarError
from service.backends.tensorrt.files import write_atomically

SCHEMA_VERSION = 1
PRECISIONS = ("fp16", "fp32")


@dataclass(frozen=True)
class Platform:
    """What a plan is bound to: the TensorRT build and the GPU model that ran the builder."""

    tensorrt_version: str
    gpu_name: str
    compute_capability: str  # "major.minor", e.g. "9.0"


@dataclass(frozen=True)
class BatchProfile:
    """The optimisation profile of the batch dimension; height/width are fixed by the card."""

    min_batch: int
    opt_batch: int
    max_batch: int
    height: int
    width: int

    def __post_init__(self):
        if not 1 <= self.min_batch <= self.opt_batch <= self.max_batch:
            raise ValueError("batch profile needs 1 <= min_batch <= opt_batch <= max_batch, got "
                             f"{self.min_batch}/{self.opt_batch}/{self.max_batch}")
        if self.height <= 0 or self.width <= 0:
            raise ValueError(f"input size must be positive, got {self.height}x{self.width}")

    def shape(self, batch: int) -> tuple[int, int, int, int]:
        """NHWC shape of the uint8 ``image`` input for ``batch`` images."""
        return (batch, self.height, self.width, 3)

    @property
    def shapes(self) -> dict[str, list[int]]:
        return {"min": list(self.shape(self.min_batch)), "opt": list(self.shape(self.opt_batch)),
                "max": list(self.shape(self.max_batch))}


@dataclass(frozen=True)
class Sidecar:
    platform: Platform
    precision: str
    fp16_mode: str | None  # "builder-flag" (TensorRT 10) or "strongly-typed" (FP16 ONNX), None for fp32
    profile: BatchProfile
    workspace_mb: int
    onnx_path: str
    onnx_sha256: str
    model_card: dict[str, Any]
    built_at: str
    parity: dict[str, Any] | None = None  # None: never checked; {"skipped": why}; or the measured agreement
    benchmark: dict[str, Any] | None = None
    schema_version: int = field(default=SCHEMA_VERSION)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["profile"]["shapes"] = self.profile.shapes
        return data

    def with_results(self, parity: dict | None, benchmark: dict | None) -> Sidecar:
        return replace(self, parity=parity, benchmark=benchmark)


def write_sidecar(sidecar: Sidecar, plan_path: str | Path) -> Path:
    path = sidecar_path(plan_path)
    write_atomically(path, (json.dumps(sidecar.to_json(), indent=2) + "\n").encode())
    return path


def read_sidecar(plan_path: str | Path) -> Sidecar:
    """Load ``<plan>.json``; ``SidecarError`` names the file and the missing or bad field."""
    path = sidecar_path(plan_path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise SidecarError(f"{path}: sidecar not found; a plan without it cannot be checked "
                           "against this GPU, rebuild it with build_engine.py") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise SidecarError(f"{path}: not readable JSON ({error})") from None
    try:
        if data["schema_version"] != SCHEMA_VERSION:
            raise SidecarError(f"{path}: field 'schema_version' is {data['schema_version']!r}, "
                               f"this build reads {SCHEMA_VERSION}")
        profile = {key: value for key, value in data["profile"].items() if key != "shapes"}
        sidecar = Sidecar(platform=Platform(**data["platform"]), profile=BatchProfile(**profile),
                          **{key: data[key] for key in _PLAIN_FIELDS})
    except KeyError as error:
        raise SidecarError(f"{path}: missing field {error.args[0]!r}") from None
    except (TypeError, ValueError, AttributeError) as error:
        raise SidecarError(f"{path}: malformed field ({error})") from None
    if sidecar.precision not in PRECISIONS:
        raise SidecarError(f"{path}: field 'precision' is {sidecar.precision!r}, "
                           f"expected one of {PRECISIONS}")
    return sidecar


_PLAIN_FIELDS = ("precision", "fp16_mode", "workspace_mb", "onnx_path", "onnx_sha256",
                 "model_card", "built_at", "parity", "benchmark")


def parity_problem(sidecar: Sidecar, minimum: float) -> str | None:
    """Why this plan's check against ONNX Runtime does not vouch for it, or None: it passed, or
    was skipped for want of images (said so at build time)."""
    parity = sidecar.parity
    if parity is None:
        return "its check against ONNX Runtime never completed (build interrupted?)"
    if "skipped" in parity:
        return None
    agreement = parity.get("label_agreement")
    if not isinstance(agreement, (int, float)) or agreement < minimum:
        return f"its labels agreed with ONNX Runtime on {agreement!r} of pixels, below {minimum}"
    return None


def mismatches(sidecar: Sidecar, running: Platform, *, onnx_sha256: str | None = None,
               precision: str | None = None, max_batch: int | None = None) -> list[str]:
    """Why this plan cannot serve here (empty when it can).

    Engines are bound to the exact TensorRT version and GPU model; the ONNX hash catches a model
    re-exported after the build; precision and max batch catch a plan built with other options.
    """
    built = sidecar.platform
    reasons = []
    if built.tensorrt_version != running.tensorrt_version:
        reasons.append(f"built with TensorRT {built.tensorrt_version}, "
                       f"this host runs TensorRT {running.tensorrt_version}")
    if (built.gpu_name, built.compute_capability) != (running.gpu_name, running.compute_capability):
        reasons.append(f"built on {built.gpu_name} (compute capability {built.compute_capability}), "
                       f"this host has {running.gpu_name} "
                       f"(compute capability {running.compute_capability})")
    if onnx_sha256 is not None and sidecar.onnx_sha256 != onnx_sha256:
        reasons.append(f"built from an ONNX file with sha256 {sidecar.onnx_sha256[:12]}..., "
                       f"the model card now lists {onnx_sha256[:12]}...")
    if precision is not None and sidecar.precision != precision:
        reasons.append(f"built for {sidecar.precision}, {precision} was asked for")
    if max_batch is not None and sidecar.profile.max_batch < max_batch:
        reasons.append(f"built for batches up to {sidecar.profile.max_batch}, "
                       f"the service batches up to {max_batch}")
    return reasons


def rebuild_command(sidecar: Sidecar, plan_path: str | Path) -> str:
    """The ``build_engine.py`` call that rebuilds this plan with the options it was built with."""
    profile = sidecar.profile
    args = ["python", "build_engine.py", sidecar.onnx_path, "-o", str(plan_path),
            "--precision", sidecar.precision, "--workspace-mb", str(sidecar.workspace_mb),
            "--input-size", f"{profile.height}x{profile.width}",
            "--min-batch", str(profile.min_batch), "--opt-batch", str(profile.opt_batch),
            "--max-batch", str(profile.max_batch)]
    return shlex.join(args)


def verify(sidecar: Sidecar, running: Platform, plan_path: str | Path, **expected) -> None:
    """Raise ``EngineMismatch`` (with the rebuild command) unless the plan can serve here."""
    reasons = mismatches(sidecar, running, **expected)
    if reasons:
        raise EngineMismatch(
            f"TensorRT plan {plan_path} does not match this host: " + "; ".join(reasons)
            + ". TensorRT engines are not portable; rebuild it here with:\n  "
            + rebuild_command(sidecar, plan_path)
            + "\n(the GPU container rebuilds automatically at start-up)")
