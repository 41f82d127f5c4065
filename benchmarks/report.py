"""docs/benchmarks.md and its plots from one run's results."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 - after choosing the headless backend

from benchmarks.codecs import Timing  # noqa: E402
from benchmarks.load import LoadResult  # noqa: E402


@dataclass(frozen=True)
class Interleaved:
    """One model at one concurrency: the raw loop, the in-process pipeline and the service, one after another in
    every round (so a machine that speeds up or slows down moves all three alike), each summed over the rounds."""

    raw: LoadResult
    in_process: LoadResult
    service: LoadResult
    service_rounds: list[float]  # service / raw, per round

    def by_system(self) -> dict[str, LoadResult]:
        """The three results under their `SYSTEMS` keys."""
        return {"raw": self.raw, "in-process": self.in_process, "service": self.service}

    def ratio(self, system: str) -> float:
        """`system` ("service" or "in-process") / raw throughput."""
        return self.by_system()[system].throughput / self.raw.throughput


@dataclass
class Results:
    model: str
    input_size: tuple[int, int]
    images: int
    machine: dict[str, str]
    command: str
    rounds: int = 1  # alternations of the raw loop, the in-process pipeline and the service at each concurrency
    load: dict[str, dict[int, LoadResult]] = field(default_factory=dict)  # system -> clients -> result
    resident_mib: dict[str, float] = field(default_factory=dict)  # server system -> resident memory after its runs
    rle: list = field(default_factory=list)
    png: list = field(default_factory=list)
    crf: list[Timing] = field(default_factory=list)
    round_ratios: dict[int, list[float]] = field(default_factory=dict)  # clients -> service / raw, per round
    other_models: dict[str, dict[int, Interleaved]] = field(default_factory=dict)  # interleaved like the headline
    crf_quality: list[str] = field(default_factory=list)  # benchmarks.crf_quality's table
    int8: list[str] = field(default_factory=list)  # benchmarks.int8's tables
    split_notes: list[str] = field(default_factory=list)  # val splits that are not disjoint from train
    notes: list[str] = field(default_factory=list)

    def ratio(self, system: str, baseline: str, clients: int) -> float | None:
        if clients not in self.load.get(system, {}) or clients not in self.load.get(baseline, {}):
            return None
        return self.load[system][clients].throughput / self.load[baseline][clients].throughput


SYSTEMS = {  # key -> label, in plotting order
    "raw": "raw ONNX Runtime session.run loop",
    "in-process": "in-process pipeline: decode, letterbox, run, map back, encode PNG; no HTTP",
    "service": "service (CPU defaults: batch 1, two batches in flight, cores split between them)",
    "service-unsplit": "service, two batches in flight on one all-core session",
    "service-serial": "service, one batch in flight",
    "service-batched": "service, dynamic batching on (max 8, 5 ms)",
    "service-shrink": "service, ONNX arena shrinkage on",
    "naive": "naive FastAPI reference server",
}
RATIOS = (("service", "raw", "service / raw ORT"),
          ("in-process", "raw", "in-process pipeline / raw ORT (at 1 client, any server's ceiling)"),
          ("service-batched", "service", "batching on / off"),
          ("service", "service-unsplit", "cores split between the batches in flight / one all-core session"),
          ("service-unsplit", "service-serial", "two batches in flight / one (one all-core session)"),
          ("service", "naive", "service / naive server"),
          ("service-shrink", "raw", "service, arena shrinkage on / raw ORT"))


def ratio_rows(results: Results) -> list[tuple[str, list[str]]]:
    levels = sorted({clients for runs in results.load.values() for clients in runs})
    rows = []
    for system, baseline, label in RATIOS:
        values = [results.ratio(system, baseline, clients) for clients in levels]
        rows.append((label, [f"{value:.2f}x" if value is not None else "n/a" for value in values]))
        if system == "service" and baseline == "raw" and results.rounds > 1:
            rows.append((f"{label}, each of the {results.rounds} rounds",
                         [", ".join(f"{r:.2f}" for r in results.round_ratios.get(clients, [])) or "n/a"
                          for clients in levels]))
    return rows


GOAL_CLIENTS = 8
GOALS = {1: 0.97, GOAL_CLIENTS: 1.0}  # clients -> service / raw ORT throughput to reach, on every bundled model


def model_ratios(results: Results, system: str = "service") -> dict[str, dict[int, float]]:
    """`system` / raw throughput per model and concurrency: the headline model and every other one."""
    ratios = {results.model: {clients: ratio for clients in results.load.get("raw", {})
                              if (ratio := results.ratio(system, "raw", clients)) is not None}}
    for model, runs in results.other_models.items():
        ratios[model] = {clients: run.ratio(system) for clients, run in runs.items()}
    return ratios


def goal_line(results: Results) -> str:
    """The verdict per goal, each model's ratio next to the in-process pipeline's (at 1 client, the ceiling)."""
    parts = []
    ceilings = model_ratios(results, "in-process")
    for clients, goal in GOALS.items():
        measured = {model: ratios[clients] for model, ratios in model_ratios(results).items() if clients in ratios}
        if not measured:
            parts.append(f"{clients} client(s): not measured in this run")
            continue
        verdict = "met" if all(ratio >= goal for ratio in measured.values()) else "NOT met"
        values = ", ".join(_ratio_text(model, ratio, ceilings.get(model, {}).get(clients))
                           for model, ratio in measured.items())
        parts.append(f"service >= {goal:.2f}x raw ONNX Runtime at {clients} client(s): {values}, {verdict}")
    return "Goals: " + "; ".join(parts) + "."


def _ratio_text(model: str, ratio: float, in_process: float | None) -> str:
    return f"{model} {ratio:.2f}x" + (f" (in-process {in_process:.2f}x)" if in_process is not None else "")


def summary_text(results: Results) -> str:
    """The side-by-side ratios, as printed at the end of a run."""
    levels = sorted({clients for runs in results.load.values() for clients in runs})
    lines = [f"Throughput ratios ({results.model}, {results.input_size[1]}x{results.input_size[0]}); clients: "
             + ", ".join(map(str, levels))]
    for label, values in ratio_rows(results):
        lines.append(f"  {label:<40} " + "  ".join(f"{value:>7}" for value in values))
    for name, ours, coco, _ in results.rle:
        lines.append(f"  RLE {name:<26} ours {ours.seconds * 1e3:7.2f} ms vs pycocotools {coco.seconds * 1e3:7.2f} ms"
                     f" ({coco.seconds / ours.seconds:.1f}x faster)")
    if results.crf:
        _, inference, *crf = results.crf
        for timing in crf:
            lines.append(f"  {timing.name} / inference at {timing.detail}: {timing.seconds / inference.seconds:.2f}x")
    lines.append(goal_line(results))
    return "\n".join(lines)


def other_model_rows(results: Results) -> list[str]:
    """The service against the raw loop for every other bundled model (its own validation images)."""
    if not results.other_models:
        return []
    lines = ["Every other bundled model, same server, on its own validation images (raw, in-process and service "
             f"interleaved, {results.rounds} round(s) each):", "",
             "| model | clients | raw img/s | service img/s | service / raw | each round | in-process / raw "
             "| raw p50 ms | service p50 ms |",
             "|---|---|---|---|---|---|---|---|---|"]
    for model, runs in results.other_models.items():
        for clients, run in sorted(runs.items()):
            raw, service = run.raw, run.service
            lines.append(f"| {model} | {clients} | {raw.throughput:.2f} | {service.throughput:.2f} | "
                         f"{run.ratio('service'):.2f}x | {', '.join(f'{r:.2f}' for r in run.service_rounds)} | "
                         f"{run.ratio('in-process'):.2f}x | "
                         f"{raw.percentile_ms(50):.0f} | {service.percentile_ms(50):.0f} |")
    return [*lines, ""]


def _plot_load(results: Results, directory: Path) -> list[str]:
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for system, label in SYSTEMS.items():
        runs = results.load.get(system)
        if not runs:
            continue
        levels = sorted(runs)
        left.plot(levels, [runs[c].throughput for c in levels], marker="o", label=label)
        right.plot(levels, [runs[c].percentile_ms(50) for c in levels], marker="o", label=f"{label} p50")
        right.plot(levels, [runs[c].percentile_ms(95) for c in levels], marker="x", linestyle="--",
                   color=right.lines[-1].get_color(), label=f"{label} p95")
    left.set(xscale="log", xlabel="concurrent clients", ylabel="images / s", title="Throughput")
    right.set(xscale="log", yscale="log", xlabel="concurrent clients", ylabel="latency (ms)",
              title="Latency p50 (solid) and p95 (dashed)")
    for axis in (left, right):
        axis.set_xticks(sorted({c for runs in results.load.values() for c in runs}))
        axis.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
        axis.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        axis.grid(alpha=0.3)
    right.yaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    left.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(directory / "load.png", dpi=110)
    plt.close(figure)
    return ["load.png"]


def _plot_costs(results: Results, directory: Path) -> list[str]:
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    names = [name for name, *_ in results.rle]
    positions = range(len(names))
    width = 0.27
    for offset, index, label in ((-width, 1, "ours"), (0, 2, "pycocotools (masks + encode)"),
                                 (width, 3, "pycocotools (encode only)")):
        left.bar([p + offset for p in positions], [row[index].seconds * 1e3 for row in results.rle], width,
                 label=label)
    left.set_xticks(list(positions), names, rotation=15, fontsize=8)
    left.set(ylabel="ms per label map", title="COCO RLE encoding", yscale="log")
    left.legend(fontsize=8)
    if results.crf:
        labels = [timing.name for timing in results.crf]
        right.barh(labels, [timing.seconds * 1e3 for timing in results.crf])
        right.set(xlabel="ms", title=f"CRF vs inference at {results.crf[0].detail}")
    for axis in (left, right):
        axis.grid(alpha=0.3, axis="y" if axis is left else "x")
    figure.tight_layout()
    figure.savefig(directory / "costs.png", dpi=110)
    plt.close(figure)
    return ["costs.png"]


def write_markdown(results: Results, path: Path) -> None:
    """The report at `path`, plots in the folder named after it (docs/benchmarks/)."""
    plots = path.parent / path.stem
    plots.mkdir(parents=True, exist_ok=True)
    load_plot, = _plot_load(results, plots)
    cost_plot, = _plot_costs(results, plots)
    levels = sorted({clients for runs in results.load.values() for clients in runs})
    out = [
        "# Benchmarks",
        "",
        f"Written by `{results.command}` (`make bench`); every number below comes from that one run, measured side by "
        "side on the same machine, model and images. Load is closed-loop from clients on the same host "
        "(127.0.0.1), so the client's own CPU use competes with the server's.",
        "",
        "## Machine",
        "",
        *[f"- **{key}**: {value}" for key, value in results.machine.items()],
        "",
        *([f"> {note}", ""] if (note := " ".join(results.notes)) else []),
        "## Set-up",
        "",
        f"- Model `{results.model}` at {results.input_size[1]}x{results.input_size[0]} (ONNX, CPU execution provider, "
        "the service's session options: all cores intra-op, sequential).",
        f"- Images: the first {results.images} validation images of the model's dataset, cycled; the service and the "
        "naive server get the file's bytes (decode, letterbox, infer, map back, encode a PNG per request); "
        "the raw loop gets the "
        "same images already decoded and letterboxed and runs `session.run` on them (labels only). The in-process "
        "pipeline is the naive server's per-request work (`benchmarks.raw.segment_png`) called from threads of "
        "the benchmark itself, with no HTTP: at 1 client nothing can overlap a request's own decode and encode, "
        "so its ratio to the raw loop is the most any server can reach there.",
        f"- Raw, in-process and service alternate: at each concurrency, {results.rounds} round(s) of the raw loop, "
        "the in-process pipeline, then the service (one warm service process throughout), so drift in the "
        "machine's speed hits all three alike; their rows and ratios sum the rounds.",
        "- Raw at N clients: N threads sharing one session. Service: `python -m service --backend onnx-cpu`, "
        "default settings (CPU: batch 1, no delay, two batches in inference at once, a batch that starts beside "
        "another on a second session with half the cores' threads, ONNX arena kept at its warm-up size); one "
        "all-core session: `SEG_ONNX__SPLIT_CORES=false`; one batch in flight: "
        "`SEG_BATCHING__CONCURRENT_BATCHES=1`; batching on: "
        "`SEG_BATCHING__MAX_BATCH_SIZE=8`, `SEG_BATCHING__MAX_DELAY_MS=5`; arena shrinkage on: "
        "`SEG_ONNX__ARENA_SHRINKAGE=true` (ONNX Runtime hands arena growth back after every run). Naive: "
        "`benchmarks/naive_server.py`, one blocking FastAPI endpoint.",
        "",
        "## Throughput ratios",
        "",
        "| ratio (throughput) | " + " | ".join(f"{c} client{'s' if c > 1 else ''}" for c in levels) + " |",
        "|---|" + "---|" * len(levels),
        *[f"| {label} | " + " | ".join(values) + " |" for label, values in ratio_rows(results)],
        "",
        goal_line(results),
        "",
        *other_model_rows(results),
        f"![throughput and latency]({plots.name}/{load_plot})",
        "",
        "## Throughput and latency",
        "",
        "| system | clients | requests | images/s | p50 ms | p95 ms | statuses |",
        "|---|---|---|---|---|---|---|",
    ]
    for system, label in SYSTEMS.items():
        for clients, run in sorted(results.load.get(system, {}).items()):
            statuses = ", ".join(f"{status}: {count}" for status, count in sorted(run.statuses.items()))
            out.append(f"| {label} | {clients} | {run.requests} | {run.throughput:.2f} | {run.percentile_ms(50):.0f} | "
                       f"{run.percentile_ms(95):.0f} | {statuses} |")
    if results.resident_mib:
        out += [
            "",
            "Resident memory of each server's process tree (server, CRF workers) after its runs:",
            "",
            "| system | resident MiB |",
            "|---|---|",
            *[f"| {SYSTEMS[system]} | {mib:.0f} |" for system, mib in results.resident_mib.items()],
        ]
    out += [
        "",
        "## Per-request costs outside the model",
        "",
        f"![RLE, CRF and inference costs]({plots.name}/{cost_plot})",
        "",
        "### COCO RLE: `service.encoding.encode_rle` vs `pycocotools.mask.encode`",
        "",
        "Same label map, byte-identical output (checked in the run). pycocotools encodes binary masks, so a caller "
        "with a label map first builds one mask per class: both columns are shown.",
        "",
        "| label map | size | ours ms | pycocotools (masks + encode) ms | pycocotools (encode only) ms | speed-up |",
        "|---|---|---|---|---|---|",
        *[f"| {name} | {ours.detail} | {ours.seconds * 1e3:.2f} | {coco.seconds * 1e3:.2f} | "
          f"{encode.seconds * 1e3:.2f} | {coco.seconds / ours.seconds:.1f}x |"
          for name, ours, coco, encode in results.rle],
        "",
        "### Indexed PNG encoding",
        "",
        "| label map | encoder | ms | bytes |",
        "|---|---|---|---|",
        *[f"| {name} | {encoder} | {seconds * 1e3:.2f} | {size} |" for name, encoder, seconds, size in results.png],
        "",
        "### Dense CRF vs inference",
        "",
        "The CRF needs the probabilities, so its cost is compared with inference fetching them (the service fetches "
        "them only for `crf=true` requests); `python -m benchmarks.crf_quality` measures each preset's accuracy "
        "(below).",
        "",
        "| step | size | ms | / inference (labels + probabilities) |",
        "|---|---|---|---|",
        *[f"| {timing.name} | {timing.detail} | {timing.seconds * 1e3:.1f} | "
          f"{timing.seconds / results.crf[1].seconds:.2f}x |" for timing in results.crf],
        "",
    ]
    if results.crf_quality:
        out += [
            "### Dense CRF: accuracy and cost per preset, every bundled model",
            "",
            "`python -m benchmarks.crf_quality`: each validation image the service's way (letterbox, ONNX model, CRF "
            "on the image's part of the input, labels back to the original resolution by nearest neighbour), scored "
            "against the original-resolution masks; CRF and inference timed on each image in turn (medians). "
            "`--record` writes each model's best preset into its card (`crf.preset`), which `crf=true` then uses.",
            "",
            *results.crf_quality,
            "",
        ]
    if results.int8:
        out += ["## INT8 vs FP32", "", "`python -m benchmarks.int8`: every bundled model's `<name>.int8.onnx` "
                "(`python -m training.quantize`, docs/MODEL_CARD.md) against its FP32 file in the same run; "
                "accuracy on the val split at the original resolution (`training.evaluate`).", "", *results.int8, ""]
    if results.split_notes:
        out += ["Splits: " + " ".join(results.split_notes), ""]
    path.write_text("\n".join(out))
