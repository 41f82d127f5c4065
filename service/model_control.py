"""Changing the served models while running: `--model-control poll` follows the models directory,
`explicit` takes load/unload calls (both APIs: `/v1/models/{name}/load`, OIP `/v2/repository/...`).

Poll is a periodic scan, not file-system events (watchfiles/inotify): events do not reach a
process on NFS and other network volumes, nor through a Kubernetes ConfigMap's symlink swap, and a
copy in progress fires them anyway, so a scan would still be needed to see that a version has
settled. A scan is a few `stat` calls and small JSON reads, so it costs nothing every few seconds;
Triton polls for the same reasons (`--repository-poll-secs`). A model is acted on only when its
versions look the same in two scans in a row, so a half-copied ONNX file is never loaded.
"""

from __future__ import annotations

import asyncio
import logging

from service.errors import ServiceError
from service.registry import ModelRegistry
from service.repository import Index, RepositoryError

log = logging.getLogger(__name__)


async def poll_repository(registry: ModelRegistry, previous: Index, interval_s: float) -> None:
    """Forever: scan, and bring every model whose files settled (or that is gone) in line with the disk."""
    while True:
        await asyncio.sleep(interval_s)
        try:
            current = await asyncio.to_thread(registry.scan)
        except RepositoryError as exc:
            log.warning("model repository unreadable, nothing changed: %s", exc)
            continue
        settled = {name: versions for name, versions in current.items() if _fingerprints(versions) ==
                   _fingerprints(previous.get(name, {}))}
        gone = [name for name in registry.models if name not in current and name not in previous]
        try:
            await registry.refresh(settled, [*settled, *gone])
        except Exception:  # noqa: BLE001 - one bad round must not end model control for the process
            log.exception("applying the model repository's changes failed; trying again next scan")
        previous = current


def _fingerprints(versions: dict) -> dict:
    return {version: source.fingerprint for version, source in versions.items()}


def require_explicit(registry: ModelRegistry) -> None:
    mode = registry.settings.model_control
    if mode != "explicit":
        raise ServiceError(409, "model_control", f"models are loaded and unloaded by the API only with "
                                                 f"--model-control explicit (this server: {mode})")


async def load_model(registry: ModelRegistry, name: str) -> None:
    """Load (or reload) `name` from the repository: 404 if it has no card there, 400 if a wanted version failed."""
    require_explicit(registry)
    try:
        index = registry.scan()
    except RepositoryError as exc:
        raise ServiceError(503, "repository_unreadable", str(exc)) from None
    if name not in index:
        raise ServiceError(404, "model_not_found", f"no model named {name!r} in {registry.settings.models}")
    await registry.refresh(index, [name])
    model = registry.models[name]
    failed = [model.attempts[v] for v in model.wanted if v in model.attempts and model.attempts[v].status == "failed"]
    if failed:
        raise ServiceError(400, "load_failed", f"model {name!r} version {failed[0].version} failed to load: "
                                               f"{failed[0].error}")


async def unload_model(registry: ModelRegistry, name: str) -> None:
    require_explicit(registry)
    await registry.unload(name)
