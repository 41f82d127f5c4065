"""Which TensorRT plan serves a model, and when one must be (re)built.

One rule, used both by the container entrypoint (build what is missing or stale before the
service starts) and by ``--backend auto`` (use TensorRT only when a matching plan exists):
a plan matches when its sidecar names this host's TensorRT version and GPU model, the ONNX hash
in the model card, and a batch range that covers the service's largest batch, and records a
passed (or explicitly skipped) parity check against ONNX Runtime.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from modelcard.files import plan_path
from modelcard.parity import TOLERANCES
from service.backends.tensorrt.errors import SidecarError
from service.backends.tensorrt.sidecar import Platform, mismatches, parity_problem, read_sidecar


@dataclass(frozen=True)
class PlanDecision:
    plan: Path
    build: bool
    reasons: tuple[str, ...]

    def describe(self) -> str:
        if not self.build:
            return f"{self.plan}: matches this GPU and TensorRT, using it"
        return f"{self.plan}: (re)building: " + "; ".join(self.reasons)


def decide(plan: Path, onnx_sha256: str, running: Platform, *, precision: str | None = None,
           max_batch: int | None = None) -> PlanDecision:
    """Use ``plan`` if it exists and its sidecar matches; otherwise say why it must be built."""
    if not plan.is_file():
        return PlanDecision(plan, True, (f"no plan at {plan}",))
    try:
        sidecar = read_sidecar(plan)
    except SidecarError as error:
        return PlanDecision(plan, True, (str(error),))
    reasons = mismatches(sidecar, running, onnx_sha256=onnx_sha256, precision=precision, max_batch=max_batch)
    unchecked = parity_problem(sidecar, TOLERANCES["tensorrt"][1])
    reasons += [unchecked] if unchecked else []
    return PlanDecision(plan, bool(reasons), tuple(reasons))


def find_matching_plan(onnx_file: str | Path, onnx_sha256: str, directories: Iterable[Path],
                       running: Platform, max_batch: int | None = None) -> tuple[Path | None, list[str]]:
    """The first plan in ``directories`` that can serve this model here (of any precision), or
    None and, per directory, why not."""
    reasons = []
    for directory in directories:
        decision = decide(plan_path(onnx_file, directory), onnx_sha256, running, max_batch=max_batch)
        if not decision.build:
            return decision.plan, []
        reasons.append("; ".join(decision.reasons))
    return None, reasons
