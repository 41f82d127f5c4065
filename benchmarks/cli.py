"""The argument parser the benchmark modules start from: their docstring as help, and the models they read."""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmarks.processes import PROJECT_ROOT


def parser_for(prog: str, doc: str | None) -> argparse.ArgumentParser:
    """`prog`'s parser with `doc` as its help and `--models` (the directory of model cards, default engines/)."""
    parser = argparse.ArgumentParser(prog=prog, description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=Path, default=PROJECT_ROOT / "engines", help="Directory of model cards.")
    return parser
