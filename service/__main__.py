"""python -m service [--host --port --models --workers --backend ...]: run the service under uvicorn."""

from __future__ import annotations

import os
import signal
import sys
import tempfile
from pathlib import Path

import uvicorn

from service.settings import Settings

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def prepare_multiprocess_metrics() -> None:
    """One empty directory where every worker writes its metric samples; must exist before workers start."""
    directory = Path(os.environ.get(MULTIPROC_ENV) or tempfile.mkdtemp(prefix="seg-metrics-"))
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):
        stale.unlink()
    os.environ[MULTIPROC_ENV] = str(directory)


def main() -> None:
    settings = Settings(_cli_parse_args=True)
    os.environ.update(settings.to_env())  # worker processes rebuild the same settings from here
    if settings.workers > 1 or os.environ.get(MULTIPROC_ENV):
        prepare_multiprocess_metrics()
    # uvicorn re-raises SIGTERM once it has shut down gracefully; that is a clean exit here.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    uvicorn.run(
        "service.app:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        log_level=settings.log_level,
        timeout_graceful_shutdown=settings.shutdown_timeout_s,
    )


if __name__ == "__main__":
    main()
