"""Writes on the engine-cache volume: plans, sidecars and timing caches are replaced atomically,
so a crash or a second writer never leaves a half-written file where a reader looks."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, then rename it over ``path``."""
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", delete=False) as partial:
        partial.write(data)
    try:
        os.replace(partial.name, path)
    except BaseException:
        os.unlink(partial.name)
        raise
