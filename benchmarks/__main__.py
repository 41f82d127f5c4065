"""python -m benchmarks [--quick]: every speed ratio of docs/benchmarks.md, measured side by side in one run.

The service vs a raw ONNX Runtime loop (and the in-process pipeline, a server's ceiling) vs a naive server,
batching on vs off, RLE/PNG/CRF costs, CRF accuracy per preset, INT8 vs FP32; prints the ratios and writes
docs/benchmarks.md with plots."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image

from benchmarks import codecs, crf_quality, int8, procfs
from benchmarks.load import LoadResult, run_load
from benchmarks.machine import competing_processes, describe
from benchmarks.processes import PROJECT_ROOT, start
from benchmarks.raw import run_in_process, run_raw, session_for
from benchmarks.report import GOAL_CLIENTS, Interleaved, Results, summary_text, write_markdown
from modelcard.card import ModelCard, load_card
from modelcard.files import find_cards
from modelcard.geometry import letterbox
from service.settings import CRF_PRESETS, CrfSettings
from training.datasets import data_root, get_dataset

BATCHING_ON = {"SEG_BATCHING__MAX_BATCH_SIZE": "8", "SEG_BATCHING__MAX_DELAY_MS": "5"}
ARENA_SHRINKAGE = {"SEG_ONNX__ARENA_SHRINKAGE": "true"}
ONE_BATCH_IN_FLIGHT = {"SEG_BATCHING__CONCURRENT_BATCHES": "1"}
ONE_ALL_CORE_SESSION = {"SEG_ONNX__SPLIT_CORES": "false"}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="Tiny counts to check the benchmark works (minutes).")
    parser.add_argument("--models", type=Path, default=PROJECT_ROOT / "engines", help="Directory of model cards.")
    parser.add_argument("--model", help="Model to benchmark (default: the one with the fewest classes).")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32], help="Concurrency levels.")
    parser.add_argument("--requests", type=int, default=48, help="Measured requests per level (at least 3 per client).")
    parser.add_argument("--images", type=int, default=16, help="Kvasir-SEG validation images to cycle through.")
    parser.add_argument("--rounds", type=int, default=3,
                        help="Alternations of the raw loop and the service at each concurrency.")
    parser.add_argument("--quality-images", type=int,
                        help="Validation images per model for the CRF and INT8 accuracy tables (default: all).")
    parser.add_argument("--int8-clients", type=int, nargs="+", default=[1, 8], help="Concurrency levels, INT8 vs FP32.")
    parser.add_argument("--output", type=Path, default=PROJECT_ROOT / "docs" / "benchmarks.md",
                        help="Report path; plots go to the folder of the same name.")
    args = parser.parse_args(argv)
    if args.quick:
        args.clients, args.requests, args.images, args.rounds, args.quality_images = [1, 8], 8, 4, 1, 4
    return args


def pick_model(models: Path, name: str | None) -> ModelCard:
    cards = [load_card(path) for path in find_cards(models)]
    if not cards:
        sys.exit(f"no model cards in {models}; export a model first (see README)")
    if name is None:
        return min(cards, key=lambda card: (card.num_classes, card.name))
    for card in cards:
        if card.name == name:
            return card
    sys.exit(f"no model {name!r} in {models}; there are: {', '.join(card.name for card in cards)}")


def validation_images(card: ModelCard, count: int) -> tuple[list[Path], str]:
    """The first `count` images of the validation split of the card's dataset, and their media type."""
    dataset = get_dataset(card.training.dataset, root=card.training.data_root, split="val")
    paths = [sample.image_path for sample in dataset.samples[:count]]
    with Image.open(paths[0]) as first:
        return paths, Image.MIME[first.format]


def label_maps() -> dict[str, np.ndarray]:
    """Real label maps at the sizes the service encodes: a binary polyp mask, a CamVid annotation, and that
    annotation at 512x512 and 1920x1080."""
    root = data_root()
    polyp_id = (root / "kvasir-seg" / "splits" / "val.txt").read_text().split()[0]
    polyp = (np.asarray(Image.open(root / "kvasir-seg" / "masks" / f"{polyp_id}.png").convert("L")) > 127)
    street = Image.open(sorted((root / "camvid" / "valannot").glob("*.png"))[0])
    return {
        "Kvasir mask": polyp.astype(np.uint8),
        "CamVid annotation": np.asarray(street),
        "CamVid at 512x512": np.asarray(street.resize((512, 512), Image.Resampling.NEAREST)),
        "CamVid at 1920x1080": np.asarray(street.resize((1920, 1080), Image.Resampling.NEAREST)),
    }


def print_run(name: str, result: LoadResult) -> None:
    print(f"{name:>16} {result.clients:>3} clients: {result.throughput:6.2f} img/s, p50 {result.percentile_ms(50):7.0f}"
          f" ms, p95 {result.percentile_ms(95):7.0f} ms, statuses {result.statuses}", flush=True)


def requests_at(args: argparse.Namespace, clients: int) -> int:
    return max(args.requests, 3 * clients)


def run_http(results: Results, name: str, module_args: list[str], ready_path: str, bodies: list[bytes],
             args: argparse.Namespace, log_dir: Path, env: dict[str, str] | None = None,
             content_type: str = "image/jpeg") -> None:
    server = start(name, module_args, ready_path, log_dir, env)
    try:
        for clients in args.clients:
            result = run_load(server.url, bodies, clients, requests_at(args, clients), results.model,
                              content_type=content_type)
            results.load.setdefault(name, {})[clients] = result
            print_run(name, result)
        if procfs.available():
            results.resident_mib[name] = procfs.resident_bytes(server.process.pid) / 2**20
    finally:
        server.stop()


def interleaved_rounds(server_url: str, card: ModelCard, session: ort.InferenceSession, canvases: list[np.ndarray],
                       bodies: list[bytes], clients_levels: list[int], args: argparse.Namespace,
                       content_type: str = "image/jpeg") -> dict[int, Interleaved]:
    """Per concurrency: rounds of the raw loop, the in-process pipeline, then the service."""
    measured = {}
    for clients in clients_levels:
        requests = requests_at(args, clients)
        raw_rounds, in_process_rounds, service_rounds = [], [], []
        for _ in range(args.rounds):
            raw_rounds.append(run_raw(session, card, canvases, clients, requests))
            in_process_rounds.append(run_in_process(session, card, bodies, clients, requests))
            service_rounds.append(run_load(server_url, bodies, clients, requests, card.name, content_type=content_type))
        measured[clients] = Interleaved(
            LoadResult.combined(raw_rounds), LoadResult.combined(in_process_rounds),
            LoadResult.combined(service_rounds),
            [service.throughput / raw.throughput for service, raw in zip(service_rounds, raw_rounds, strict=True)])
    return measured


def run_service_against_raw(results: Results, card: ModelCard, session: ort.InferenceSession,
                            canvases: list[np.ndarray], bodies: list[bytes], content_type: str,
                            service_args: list[str], args: argparse.Namespace, log_dir: Path) -> None:
    """The headline rounds (one warm server throughout), then the same rounds for every other bundled model at up
    to 8 clients, on that model's own validation images."""
    server = start("service", service_args, "/readyz", log_dir)
    try:
        for clients, run in interleaved_rounds(server.url, card, session, canvases, bodies, args.clients, args,
                                               content_type).items():
            results.round_ratios[clients] = run.service_rounds
            for name, result in run.by_system().items():
                results.load.setdefault(name, {})[clients] = result
                print_run(name, result)
        if procfs.available():
            results.resident_mib["service"] = procfs.resident_bytes(server.process.pid) / 2**20
        for other in (load_card(path) for path in find_cards(args.models)):
            if other.name == card.name:
                continue
            paths, content_type = validation_images(other, args.images)
            other_canvases = [letterbox(np.asarray(Image.open(path).convert("RGB")), other.input_size)[0]
                              for path in paths]
            results.other_models[other.name] = interleaved_rounds(
                server.url, other, session_for(other), other_canvases, [path.read_bytes() for path in paths],
                [clients for clients in args.clients if clients <= GOAL_CLIENTS], args, content_type)
            for run in results.other_models[other.name].values():
                for name, result in run.by_system().items():
                    print_run(f"{other.name} {name}", result)
    finally:
        server.stop()


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    card = pick_model(args.models, args.model)
    paths, content_type = validation_images(card, args.images)
    bodies = [path.read_bytes() for path in paths]
    canvases = [letterbox(np.asarray(Image.open(path).convert("RGB")), card.input_size)[0] for path in paths]
    command = shlex.join(["python", "-m", "benchmarks", *(sys.argv[1:] if argv is None else argv)])
    results = Results(card.name, card.input_size, len(paths), describe(), command, args.rounds)
    started = time.monotonic()
    print(f"benchmarking {card.name} ({card.input.width}x{card.input.height}) on {results.machine['CPU']}", flush=True)

    session = session_for(card)
    with tempfile.TemporaryDirectory(prefix="bench-") as log_dir:
        service_args = ["service", "--models", str(args.models), "--backend", "onnx-cpu", "--log-level", "warning"]
        log = Path(log_dir)
        run_service_against_raw(results, card, session, canvases, bodies, content_type, service_args, args, log)
        run_http(results, "service-unsplit", service_args, "/readyz", bodies, args, log, ONE_ALL_CORE_SESSION,
                 content_type)
        run_http(results, "service-serial", service_args, "/readyz", bodies, args, log, ONE_BATCH_IN_FLIGHT,
                 content_type)
        run_http(results, "service-batched", service_args, "/readyz", bodies, args, log, BATCHING_ON, content_type)
        run_http(results, "service-shrink", service_args, "/readyz", bodies, args, log, ARENA_SHRINKAGE, content_type)
        run_http(results, "naive", ["benchmarks.naive_server", "--card", str(card.path)], "/ready", bodies, args,
                 log, content_type=content_type)

    repeat = 3 if args.quick else 7
    maps = label_maps()
    results.rle = codecs.rle_comparison(maps, repeat)
    palette = [(37 * i % 256, 91 * i % 256, 151 * i % 256) for i in range(256)]
    results.png = codecs.png_costs(maps, palette, repeat)
    results.crf = codecs.crf_vs_inference(session, card, np.asarray(Image.open(paths[0]).convert("RGB")), repeat)
    cards = [load_card(path) for path in find_cards(args.models)]
    variants = {preset: CrfSettings(preset=preset) for preset in CRF_PRESETS}
    results.crf_quality = crf_quality.markdown(
        [score for each in cards for score in crf_quality.measure(each, variants, "val", args.quality_images)],
        variants)
    results.split_notes = crf_quality.split_notes(cards, "val")
    results.int8 = int8.markdown([int8.compare(each, args.int8_clients, args.requests, args.rounds, args.images,
                                               args.quality_images) for each in int8.int8_cards(args.models)])

    if flips := card.architecture.test_time_flips:
        results.notes.append(f"The graph of `{card.name}` averages over flipped views (test-time flips: "
                             f"{', '.join(flips)}): every inference is {2 ** len(flips)} network passes, so the "
                             "service's fixed per-request costs are a smaller share than for a single-pass model "
                             "(`--model` picks another).")
    if competing := competing_processes():
        results.notes.append(f"{len(competing)} other CPU-heavy job(s) were running at the end of this run and "
                             "shared the CPU cores with it: absolute numbers are lower than on an idle machine; the "
                             "ratios compare runs made under the same contention, one after another.")
    results.notes.append(f"Load average at the end (1/5/15 min): {', '.join(f'{v:.2f}' for v in os.getloadavg())}.")
    results.notes.append(f"The whole run took {time.monotonic() - started:.0f} s.")
    write_markdown(results, args.output)
    print(summary_text(results))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
