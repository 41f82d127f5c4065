"""TensorRT against ONNX Runtime CUDA, read from a plan's sidecar, as ratios a bug report can quote.

    python build_engine.py report engines/polyp.plan

``build_engine.py --compare-onnxruntime`` times both at batch 1 and the optimal batch and records
the parity check; this prints them side by side. Exit 1 when the sidecar cannot vouch for the
plan: parity skipped (no real images) or no ONNX Runtime timings on CUDA (only CPU, or none).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from service.backends.tensorrt.errors import SidecarError
from service.backends.tensorrt.sidecar import Sidecar, read_sidecar

ONNX_RUNTIME_CUDA = "onnxruntime_CUDAExecutionProvider_fp32"


@dataclass(frozen=True)
class Comparison:
    batch: int
    tensorrt_p50_ms: float
    onnxruntime_p50_ms: float
    tensorrt_images_per_s: float
    onnxruntime_images_per_s: float

    @property
    def latency_speedup(self) -> float:
        """ONNX Runtime's p50 over TensorRT's: above 1 means TensorRT answers sooner."""
        return self.onnxruntime_p50_ms / self.tensorrt_p50_ms

    @property
    def throughput_ratio(self) -> float:
        """TensorRT's images/s over ONNX Runtime's."""
        return self.tensorrt_images_per_s / self.onnxruntime_images_per_s


def compare(benchmark: dict) -> list[Comparison]:
    """Pair TensorRT's and ONNX Runtime CUDA's timings by batch; ValueError says what is missing."""
    tensorrt = next((key for key in benchmark if key.startswith("tensorrt_")), None)
    if tensorrt is None:
        raise ValueError("the sidecar has no TensorRT timings")
    if ONNX_RUNTIME_CUDA not in benchmark:
        raise ValueError(f"no ONNX Runtime CUDA timings (found {sorted(benchmark)}): build with "
                         "--compare-onnxruntime where onnxruntime-gpu's CUDA provider loads")
    reference = {row["batch"]: row for row in benchmark[ONNX_RUNTIME_CUDA]}
    return [Comparison(batch=row["batch"], tensorrt_p50_ms=row["latency_ms_p50"],
                       onnxruntime_p50_ms=reference[row["batch"]]["latency_ms_p50"],
                       tensorrt_images_per_s=row["images_per_s"],
                       onnxruntime_images_per_s=reference[row["batch"]]["images_per_s"])
            for row in benchmark[tensorrt] if row["batch"] in reference]


def report(sidecar: Sidecar) -> tuple[str, list[str]]:
    """The report's lines, and the problems that make it not vouch for the plan."""
    platform, problems = sidecar.platform, []
    lines = [f"plan: TensorRT {platform.tensorrt_version} on {platform.gpu_name} (compute capability "
             f"{platform.compute_capability}), {sidecar.precision} ({sidecar.fp16_mode or 'fp32'}), built "
             f"{sidecar.built_at}"]
    parity = sidecar.parity or {}
    if "label_agreement" in parity:
        lines.append(f"parity vs {parity.get('reference', 'ONNX Runtime')}: labels agree on "
                     f"{parity['label_agreement']:.4%} of pixels over {parity['images']} real images, "
                     f"max |dp| {parity['max_abs_prob_diff']:.2e}")
    else:
        problems.append(f"parity not measured: {parity.get('skipped', 'no record')}")
    try:
        rows = compare(sidecar.benchmark or {})
    except ValueError as error:
        problems.append(str(error))
        rows = []
    if rows:
        lines.append(f"{'batch':>5}  {'TRT p50 ms':>10}  {'ORT p50 ms':>10}  {'p50 ORT/TRT':>11}  "
                     f"{'TRT img/s':>9}  {'ORT img/s':>9}  {'img/s TRT/ORT':>13}")
        lines += [f"{row.batch:>5}  {row.tensorrt_p50_ms:>10.2f}  {row.onnxruntime_p50_ms:>10.2f}  "
                  f"{row.latency_speedup:>10.2f}x  {row.tensorrt_images_per_s:>9.1f}  "
                  f"{row.onnxruntime_images_per_s:>9.1f}  {row.throughput_ratio:>12.2f}x" for row in rows]
    return "\n".join(lines), problems


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python build_engine.py report PLAN", file=sys.stderr)
        return 2
    try:
        text, problems = report(read_sidecar(Path(args[0])))
    except SidecarError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(text)
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    return 1 if problems else 0

