"""Container start-up: make sure every model has a TensorRT plan that matches this GPU.

    python build_engine.py ensure --models engines --cache /var/cache/deeplab/engines

For each model card in ``--models``, a plan in ``--cache`` (a volume, so it survives restarts)
is used when its sidecar matches this host; otherwise ``build_engine.py`` builds it there. A host
without TensorRT or a GPU, or a failed build, is reported and the service then serves that
model with ONNX Runtime (``--backend auto``); exit status 1 only tells the entrypoint to say so.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from modelcard.card import ModelCard, ModelCardError, load_card
from modelcard.files import find_cards, plan_path
from service.backends.tensorrt.errors import TensorRTError
from service.backends.tensorrt.plan_cache import PlanDecision, decide
from service.backends.tensorrt.sidecar import Platform


def model_cards(models: Path) -> list[ModelCard]:
    """Every valid card in ``models``, found as the service finds them."""
    cards = []
    for path in find_cards(models):
        try:
            cards.append(load_card(path))
        except ModelCardError as error:
            print(f"ensure_engines: skipping {path}: {error}", file=sys.stderr)
    return cards


def plan_decisions(cards: list[ModelCard], cache: Path, running: Platform, precision: str,
                   max_batch: int) -> list[tuple[ModelCard, PlanDecision]]:
    return [(card, decide(plan_path(card.files.onnx, cache), card.files.onnx_sha256, running,
                          precision=precision, max_batch=max_batch)) for card in cards]


def build_arguments(card: ModelCard, decision: PlanDecision, args: argparse.Namespace) -> list[str]:
    """``build_engine.py`` arguments that produce the plan ``decision`` asks for."""
    argv = [str(card.onnx_path), "-o", str(decision.plan), "--precision", args.precision,
            "--max-batch", str(args.max_batch), "--opt-batch", str(min(args.opt_batch, args.max_batch)),
            "--workspace-mb", str(args.workspace_mb)]
    return argv + (["--images", str(args.images)] if args.images else [])


def ensure(args: argparse.Namespace, running: Platform, build: Callable[[list[str]], int]) -> int:
    args.cache.mkdir(parents=True, exist_ok=True)
    failures = 0
    for card, decision in plan_decisions(model_cards(args.models), args.cache, running,
                                         args.precision, args.max_batch):
        print(f"ensure_engines: {card.name}: {decision.describe()}", flush=True)
        if decision.build and build(build_arguments(card, decision, args)) != 0:
            print(f"ensure_engines: {card.name}: build failed; it will be served by ONNX Runtime",
                  file=sys.stderr, flush=True)
            failures += 1
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    from engine_builder import cli
    from service.backends.tensorrt.host import current_platform

    p = argparse.ArgumentParser(prog="python build_engine.py ensure", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", type=Path, default=Path("engines"), help="directory of model cards")
    p.add_argument("--cache", type=Path, required=True, help="directory the plans are kept in")
    p.add_argument("--precision", choices=("fp16", "fp32"), default="fp16")
    p.add_argument("--max-batch", type=int, default=32, help="the service's largest batch")
    p.add_argument("--opt-batch", type=int, default=8)
    p.add_argument("--workspace-mb", type=int, default=cli.DEFAULT_WORKSPACE_MB)
    p.add_argument("--images", type=Path, help="images for the builds' parity checks")
    p.add_argument("--device", type=int, default=0)
    args = p.parse_args(argv)
    try:
        running = current_platform(args.device)
    except TensorRTError as error:
        print(f"ensure_engines: TensorRT cannot be used here, serving with ONNX Runtime: {error}",
              file=sys.stderr)
        return 0

    def build(build_argv: list[str]) -> int:
        try:
            return cli.main(build_argv + ["--device", str(args.device)])
        except SystemExit as exit_:  # argument errors exit through argparse
            return exit_.code if isinstance(exit_.code, int) else 1
        except Exception as error:  # noqa: BLE001 - one model's failed build must not stop the others
            print(f"ensure_engines: build raised {type(error).__name__}: {error}", file=sys.stderr)
            return 1

    return ensure(args, running, build)

