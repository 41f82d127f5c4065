"""``python build_engine.py``: the one command for build-time TensorRT work.

    python build_engine.py model.onnx [options]   build, check and describe a plan on this host
    python build_engine.py ensure --cache DIR      a checked plan for every card (container start)
    python build_engine.py report PLAN             a plan's parity and speed against ONNX Runtime
    python build_engine.py fp16 model.onnx         only the FP16 ONNX conversion, with its parity

Defaults come from the model card beside the ONNX file (``engines/<name>.json``): its input size
and ONNX hash; FP16, a 2048 MB workspace and batches 1/8/32 otherwise. Steps:

1. check the arguments, the card and that the output can be written (before any slow work);
2. find TensorRT and the GPU; for FP16 on TensorRT 11+ convert to an FP16 ONNX and check it in
   ONNX Runtime (labels must agree on >= 99.5 % of pixels);
3. build with progress, a batch optimisation profile and a persistent timing cache;
4. check the engine against ONNX Runtime on real images and time it at batch 1 and the optimal
   batch, then (only if it passed) write ``<plan>`` and ``<plan>.json`` (TensorRT version, GPU,
   precision, profile, ONNX sha256, model card, parity, timings).
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from engine_builder import builder, fp16, graph
from engine_builder.checks import compare_labels, measure_throughput, require_agreement, sample_images
from modelcard.card import ModelCard, ModelCardError, load_card
from modelcard.files import sidecar_path
from modelcard.parity import TOLERANCES
from service.backends.tensorrt.errors import OutputNotWritable, TensorRTError
from service.backends.tensorrt.sidecar import BatchProfile, Sidecar, write_sidecar

DEFAULT_WORKSPACE_MB = 2048
DEFAULT_BATCHES = (1, 8, 32)
DEFAULT_PARITY_IMAGES = 16


def parse_input_size(text: str) -> tuple[int, int]:
    """``512`` or ``512x384`` (height x width)."""
    try:
        parts = [int(part) for part in text.lower().split("x")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"input size must be N or HxW, got {text!r}") from None
    if len(parts) == 1:
        parts *= 2
    if len(parts) != 2 or min(parts) <= 0:
        raise argparse.ArgumentTypeError(f"input size must be N or HxW with positive sides, got {text!r}")
    return parts[0], parts[1]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python build_engine.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("onnx", type=Path, help="ONNX model exported by python -m training.export")
    p.add_argument("-o", "--output", type=Path, help="plan file (default: <onnx stem>.plan beside the ONNX)")
    p.add_argument("--workspace-mb", type=int, default=DEFAULT_WORKSPACE_MB,
                   help=f"builder workspace memory pool in MiB (default {DEFAULT_WORKSPACE_MB})")
    p.add_argument("--input-size", type=parse_input_size,
                   help="N or HxW; must match the ONNX input (default: the model card's input size)")
    for name, default in zip(("min", "opt", "max"), DEFAULT_BATCHES):
        p.add_argument(f"--{name}-batch", type=int, default=default,
                       help=f"{name} batch of the optimisation profile (default {default})")
    p.add_argument("--timing-cache", type=Path, help="timing cache file, read and updated "
                   "(default: <plan stem>.timing-cache beside the plan; makes rebuilds fast)")
    p.add_argument("--precision", choices=("fp16", "fp32"), default="fp16", help="default fp16")
    p.add_argument("--images", type=Path, help="folder of images for the parity check (default: "
                   "the validation split of the dataset named in the model card)")
    p.add_argument("--parity-images", type=int, default=DEFAULT_PARITY_IMAGES,
                   help=f"images compared with ONNX Runtime (default {DEFAULT_PARITY_IMAGES})")
    p.add_argument("--compare-onnxruntime", action="store_true",
                   help="also time the FP32 ONNX in ONNX Runtime (CUDA if available) for comparison")
    p.add_argument("--device", type=int, default=0, help="CUDA device index (default 0)")
    return p


def resolve_options(args: argparse.Namespace, argp: argparse.ArgumentParser) -> tuple[ModelCard, BatchProfile]:
    """Card, profile and output paths; argument errors exit through ``argp.error`` (status 2)."""
    if not args.onnx.is_file():
        argp.error(f"ONNX file not found: {args.onnx}")
    card_path = args.onnx.with_suffix(".json")
    try:
        card = load_card(card_path)
    except ModelCardError as error:
        argp.error(f"{error} (build_engine.py reads the model card beside the ONNX file)")
    size = args.input_size or card.input_size
    if size != card.input_size:
        argp.error(f"--input-size {size[0]}x{size[1]} differs from the model's fixed input "
                   f"{card.input_size[0]}x{card.input_size[1]} ({card_path}: input.height/width); "
                   "re-export with python -m training.export --input-size to change it")
    try:
        profile = BatchProfile(args.min_batch, args.opt_batch, args.max_batch, *size)
    except ValueError as error:
        argp.error(str(error))
    if args.workspace_mb < 64:
        argp.error(f"--workspace-mb must be at least 64, got {args.workspace_mb}")
    if args.parity_images < 1:
        argp.error("--parity-images must be >= 1")
    args.output = args.output or args.onnx.with_suffix(".plan")
    args.timing_cache = args.timing_cache or args.output.with_suffix(".timing-cache")
    return card, profile


def ensure_writable(path: Path) -> None:
    """Fail now, not after a ten-minute build, if ``path`` cannot be written."""
    if path.is_dir():
        raise OutputNotWritable(f"output {path} is a directory; give a file name such as {path / 'model.plan'}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}."):
            pass
    except OSError as error:
        raise OutputNotWritable(f"cannot write {path}: {error.strerror or error} "
                                "(choose another location with -o)") from None


class _Log:
    def __init__(self):
        self.started = time.monotonic()

    def __call__(self, message: str) -> None:
        print(f"[{time.monotonic() - self.started:7.1f}s] {message}", flush=True)


def run(args: argparse.Namespace, card: ModelCard, profile: BatchProfile) -> int:
    from service.backends.tensorrt.cuda import use_device
    from service.backends.tensorrt.host import current_platform, import_tensorrt

    log = _Log()
    for path in (args.output, sidecar_path(args.output), args.timing_cache):
        ensure_writable(path)
    trt = import_tensorrt()
    platform = current_platform(args.device)
    use_device(args.device)  # the builder builds on the device current on this thread
    log(f"TensorRT {platform.tensorrt_version} on GPU {args.device}, {platform.gpu_name} "
        f"(compute capability {platform.compute_capability})")
    try:
        images = sample_images(card.training.recipe, args.parity_images, card.input_size, args.images)
    except (FileNotFoundError, ValueError, KeyError) as error:
        images = None
        log(f"warning: no images for the parity checks ({error}); pass --images DIR")

    mode = builder.fp16_mode(trt) if args.precision == "fp16" else None
    with tempfile.TemporaryDirectory(dir=args.output.parent, prefix=".build-") as scratch:
        source = args.onnx
        if mode == builder.STRONGLY_TYPED:
            source = Path(scratch) / f"{args.onnx.stem}.fp16.onnx"
            log(f"TensorRT {trt.__version__} has no BuilderFlag.FP16: converting to an FP16 ONNX "
                "for a strongly typed build")
            fp16.write_fp16_onnx(args.onnx, source)
            if images is not None:
                parity = fp16.fp16_parity(args.onnx, source, images)
                log(f"FP16 ONNX vs FP32 ONNX (ONNX Runtime): labels agree on {parity.label_agreement:.4%}")
                require_agreement(parity, "FP16 ONNX", "onnx_fp16")
        fed = Path(scratch) / f"{args.onnx.stem}.tensorrt.onnx"
        rerouted = graph.write_tensorrt_onnx(source, fed)
        log(f"{rerouted} cast(s) to uint8 routed through float32 (TensorRT casts to uint8 only from float)")
        request = builder.BuildRequest(
            onnx_path=fed, input_name=card.input.name, profile=profile, workspace_mb=args.workspace_mb,
            fp16_flag=mode == builder.BUILDER_FLAG, strongly_typed=mode == builder.STRONGLY_TYPED,
            timing_cache=args.timing_cache)
        log(f"building {args.precision} engine ({mode or 'fp32'}), batch {profile.min_batch}/"
            f"{profile.opt_batch}/{profile.max_batch} at {profile.height}x{profile.width}, "
            f"workspace {args.workspace_mb} MiB")
        plan_bytes = builder.build_serialized_engine(trt, request, builder.ProgressPrinter())
        # checked under a temporary name: a crash or a failed check never leaves a plan the cache accepts
        candidate = Path(scratch) / args.output.name
        candidate.write_bytes(plan_bytes)
        sidecar = Sidecar(
            platform=platform, precision=args.precision, fp16_mode=mode, profile=profile,
            workspace_mb=args.workspace_mb, onnx_path=str(args.onnx), onnx_sha256=card.files.onnx_sha256,
            model_card=card.to_json(),
            built_at=datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
        write_sidecar(sidecar, candidate)
        log(f"built {len(plan_bytes) / 2**20:.1f} MiB; checking it before writing {args.output}")
        checked = check_engine(args, candidate, card, profile, sidecar, images, log)
        publish(candidate, checked, args.output)
    log(f"wrote {args.output} and {sidecar_path(args.output)}")
    return 0


def publish(candidate: Path, sidecar: Sidecar, output: Path) -> None:
    """Move the checked plan (beside ``output``, same file system) over the old one, then write
    its sidecar. The old sidecar goes first, so a crash in between leaves a plan without a
    sidecar, which is rebuilt, never a new plan described by an old sidecar."""
    sidecar_path(output).unlink(missing_ok=True)
    os.replace(candidate, output)
    write_sidecar(sidecar, output)


def check_engine(args, plan: Path, card: ModelCard, profile: BatchProfile, sidecar: Sidecar, images,
                 log) -> Sidecar:
    """Parity with ONNX Runtime (``ParityFailure`` below the threshold) and speed at batch 1 and
    the optimal batch; returns the sidecar with both recorded."""
    import onnxruntime

    from modelcard.onnx_runner import OnnxRunner
    from service.backends.tensorrt.backend import TensorRTBackend

    backend = TensorRTBackend(plan, card, device=args.device)
    providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider")
                 if p in onnxruntime.get_available_providers()]

    def engine(batch_images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        result = backend.infer(batch_images, want_probabilities=True)
        return result.probabilities, result.labels

    try:
        reference = OnnxRunner(args.onnx, providers=providers, card=card)
        if images is None:
            parity = {"skipped": "no images (pass --images DIR, or mount the dataset)"}
        else:
            measured = compare_labels(reference, engine, images, profile.opt_batch)
            log(f"TensorRT vs ONNX Runtime ({providers[0]}): labels agree on {measured.label_agreement:.4%} "
                f"of pixels, max |dp| {measured.max_abs_prob_diff:.2e}, {measured.images} images "
                f"(required {TOLERANCES['tensorrt'][1]:.1%})")
            require_agreement(measured, f"TensorRT engine built for {args.output}", "tensorrt")
            parity = {**measured.as_dict(), "reference": f"onnxruntime:{providers[0]}"}
        bench_images = images if images is not None else np.zeros((1, *profile.shape(1)[1:]), np.uint8)
        timings = {f"tensorrt_{args.precision}": [
            measure_throughput(lambda x: backend.infer(x, False), bench_images, batch)
            for batch in sorted({1, profile.opt_batch})]}
        if args.compare_onnxruntime:
            timings[f"onnxruntime_{providers[0]}_fp32"] = [
                measure_throughput(reference, bench_images, batch) for batch in sorted({1, profile.opt_batch})]
    finally:
        backend.close()
    for runtime, results in timings.items():
        for result in results:
            log(f"{runtime:<40} {result.line()}")
    return sidecar.with_results(parity=parity, benchmark={
        runtime: [r.as_dict() for r in results] for runtime, results in timings.items()})


SUBCOMMANDS = {"ensure": "engine_builder.ensure_engines", "report": "engine_builder.report",
               "fp16": "engine_builder.fp16"}  # anything else is a build: `build_engine.py model.onnx`


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in SUBCOMMANDS:
        return importlib.import_module(SUBCOMMANDS[argv[0]]).main(argv[1:])
    argp = parser()
    args = argp.parse_args(argv)
    card, profile = resolve_options(args, argp)
    try:
        return run(args, card, profile)
    except TensorRTError as error:
        print(f"build_engine.py: error: {error}", file=sys.stderr)
        return 1
