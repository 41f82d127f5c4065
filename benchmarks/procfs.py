"""Resident memory and open file descriptors of a server's process tree, read from Linux /proc.

Used by the benchmarks (memory per configuration) and the reliability tests (overload, soak).
"""

from __future__ import annotations

import os
from pathlib import Path

PROC = Path("/proc")


def available() -> bool:
    return (PROC / "self" / "status").is_file()


def process_tree(pid: int) -> list[int]:
    """`pid` and all its descendants (the server, its fork server and CRF workers)."""
    tree, pending = [], [pid]
    while pending:
        current = pending.pop()
        tree.append(current)
        for task in (PROC / str(current) / "task").glob("*/children"):
            pending.extend(int(child) for child in task.read_text().split())
    return tree


def resident_bytes(pid: int) -> int:
    """Resident set size of the process tree rooted at `pid`."""
    total = 0
    for member in process_tree(pid):
        for line in (PROC / str(member) / "status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) * 1024
    return total


def open_fds(pid: int) -> int:
    """Open file descriptors of the process tree rooted at `pid`."""
    return sum(len(os.listdir(PROC / str(member) / "fd")) for member in process_tree(pid))
