"""``python -m training.budget --minutes 9 --config <toml> [training.train flags]``: a run sized
to a deadline.

Time on a rented GPU is fixed in advance, and a cosine schedule that ``--max-minutes`` cuts short
never reaches its small learning rates. This first times a 2-epoch calibration run of the same
settings (same crop, batch and loaders; a scratch run directory, deleted after), then starts the
real run with ``--epochs`` chosen so that the whole schedule ends inside the budget, keeping
``--max-minutes`` as a backstop. The real run's ``stages.json`` records the epochs it was given,
so it reproduces without this module.
"""

from __future__ import annotations

import argparse
import csv
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from training.config import parse_args

CALIBRATION_EPOCHS = 2  # the first pays for the compile; the second is the steady cost
# Of the time left: for the last checkpoint's write and for epochs slower than the calibration's (seen on 2
# CPU cores: a 31 s calibration epoch, then 35-41 s epochs, so 0.95 left 140 epochs that could not fit).
SAFETY = 0.85


def epochs_that_fit(seconds_left: float, startup_seconds: float, epoch_seconds: float) -> int:
    """How many epochs of ``epoch_seconds`` fit after a start-up (build + compile) of ``startup_seconds``."""
    return max(1, math.floor((seconds_left * SAFETY - startup_seconds) / epoch_seconds))


def _train(flags: list[str]) -> None:
    subprocess.run([sys.executable, "-m", "training.train", *flags], check=True)


def calibrate(flags: list[str], scratch: Path) -> tuple[float, float]:
    """(start-up seconds, seconds per epoch) of a run with these flags, from a short run.

    Start-up is the process's wall time less the steady epochs: imports, data, build, the XLA
    compile and the first epoch (which pays for it) all count, so the estimate errs long.
    """
    started = time.monotonic()
    _train([*flags, "--run-name", "calibration", "--checkpoint-dir", str(scratch),
            "--epochs", str(CALIBRATION_EPOCHS), "--max-minutes", "none"])
    wall = time.monotonic() - started
    with open(scratch / "calibration" / "history.csv", newline="") as file:
        seconds = [float(row["epoch_seconds"]) for row in csv.DictReader(file)]
    steady = seconds[1:]
    epoch_seconds = max(steady) if steady else seconds[0]
    return wall - sum(steady), epoch_seconds


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, required=True, help="wall-clock budget for both runs")
    args, flags = parser.parse_known_args(argv)
    deadline = time.monotonic() + args.minutes * 60
    config = parse_args(flags)  # fails fast on a bad flag, before any time is spent
    with tempfile.TemporaryDirectory(prefix="calibration-") as scratch:
        startup, epoch_seconds = calibrate(flags, Path(scratch))
    seconds_left = deadline - time.monotonic()
    epochs = epochs_that_fit(seconds_left, startup, epoch_seconds)
    print(f"budget: {seconds_left:.0f} s left; start-up {startup:.0f} s, {epoch_seconds:.1f} s per epoch "
          f"-> {epochs} epochs for {config.run_name}", flush=True)
    _train([*flags, "--epochs", str(epochs), "--max-minutes", f"{seconds_left / 60:.2f}"])


if __name__ == "__main__":
    main()
