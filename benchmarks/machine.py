"""A description of the machine a benchmark ran on, including what else was competing for its CPUs."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

from service.backends.onnx import int8_instructions


def _cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def _memory_gib() -> float | None:
    meminfo = Path("/proc/meminfo")
    if meminfo.is_file():
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 2**20
    return None


def competing_processes(pattern: str = r"training\.train|benchmarks\.training_speed|-m pytest") -> list[str]:
    """Command lines of other processes matching `pattern` (training jobs or test runs sharing the cores)."""
    try:
        found = subprocess.run(["pgrep", "-af", pattern], capture_output=True, text=True, check=False).stdout
    except FileNotFoundError:
        return []
    return [line for line in found.splitlines() if str(os.getpid()) != line.split()[0] and "pgrep" not in line]


def describe() -> dict[str, str]:
    import numpy
    import onnxruntime

    memory = _memory_gib()
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    others = competing_processes()
    return {
        "CPU": f"{_cpu_model()}, {usable} usable cores (os.cpu_count {os.cpu_count()})",
        "Memory": f"{memory:.1f} GiB" if memory else "unknown",
        "OS": f"{platform.system()} {platform.release()} ({platform.machine()})",
        "Python": platform.python_version(),
        "ONNX Runtime": f"{onnxruntime.__version__} ({', '.join(onnxruntime.get_available_providers())})",
        "NumPy": numpy.__version__,
        "INT8 dot-product instructions": ", ".join(int8_instructions()) or "none (no VNNI/AMX)",
        "Load average at start (1/5/15 min)": load,
        "Competing jobs at start": f"{len(others)} training or test process(es) running" if others else "none found",
    }
