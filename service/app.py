"""create_app(settings): the FastAPI app, its middlewares and routers, and its lifespan.

Lifespan: discover the model cards, then load and warm up every model (and start the CRF workers)
in the background, so `/healthz` answers at once and `/readyz` turns 200 when all are ready; in
poll mode the same task then watches the models directory.
On SIGTERM `/readyz` turns 503 at once; after `drain_grace_s` uvicorn stops accepting
connections and waits for in-flight requests; then every model queue is drained and the
engines and CRF workers are released.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
from collections.abc import AsyncIterator

from fastapi import FastAPI

from service import telemetry
from service.api import ROUTERS
from service.api.errors import install_error_handlers
from service.api.middleware import BodyLimitMiddleware, RequestMetricsMiddleware
from service.crf import CrfPool
from service.model_control import poll_repository
from service.registry import ModelRegistry
from service.repository import Index
from service.settings import Settings
from service.state import ServiceState

log = logging.getLogger(__name__)

DESCRIPTION = """Semantic segmentation with DeepLabv3+.

`POST /segment` takes an image and returns its mask at the image's own size: an indexed PNG whose
pixel values are class ids (colours from the model card), COCO RLE per class, class probabilities,
an uncertainty map, polygons (COCO and GeoJSON) or an overlay; `POST /segment/batch` takes several
images. Drift signals (confidence, class areas) are in `GET /metrics`. Models, their
classes and how they are served: `GET /v1/models`. All errors are JSON
`{"error": {"code": ..., "message": ...}}`.
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    """The service for `settings` (default: read from the environment, as `--workers` processes do)."""
    settings = settings or Settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state = ServiceState(settings=settings, registry=ModelRegistry(settings), crf_pool=CrfPool(settings.crf))
        app.state.service = state
        index = state.registry.discover()
        loading = asyncio.create_task(_load(state, index), name="load-models")
        restore_signal = _flip_readiness_on_sigterm(state)
        try:
            yield
        finally:
            state.draining = True
            restore_signal()
            loading.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await loading
            await state.registry.close()
            await asyncio.to_thread(state.crf_pool.close)
            telemetry.process_exiting()

    app = FastAPI(
        title="DeepLabv3+ segmentation service",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    install_error_handlers(app)
    for router in ROUTERS:
        app.include_router(router)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.limits.max_body_bytes)
    app.add_middleware(RequestMetricsMiddleware)  # added last = outermost: it also counts the 413s
    return app


async def _load(state: ServiceState, index: Index) -> None:
    """Load every model, then start the CRF workers; a failure here is reported by /readyz, not raised.
    With `--model-control poll` the task then follows the models directory until shutdown cancels it."""
    await state.registry.load_all()
    try:
        await state.crf_pool.warm_up()
    except Exception as exc:  # noqa: BLE001 - the service can say why it is not ready
        log.exception("CRF workers failed to start")
        state.startup_problem = f"CRF workers failed to start: {type(exc).__name__}: {exc}"
    state.started = True
    log.info("started: %s", ", ".join(f"{name} {m.status}" for name, m in state.registry.models.items()))
    if state.settings.model_control == "poll":
        await poll_repository(state.registry, index, state.settings.repository_poll_s)


def _flip_readiness_on_sigterm(state: ServiceState):
    """Chain in front of uvicorn's SIGTERM handler: mark draining now, let uvicorn shut down after the grace.

    Returns a function that puts the previous handler back. Does nothing off the main thread
    (e.g. under a test client), where signals cannot be handled.
    """
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    loop = asyncio.get_running_loop()
    previous = signal.getsignal(signal.SIGTERM)
    grace = state.settings.drain_grace_s

    def on_sigterm(signum, frame) -> None:
        already = state.draining
        state.draining = True
        if not callable(previous):
            return
        if already or grace <= 0:
            previous(signum, frame)
        else:
            log.info("SIGTERM: not ready; serving for %.1f s more before draining", grace)
            loop.call_soon_threadsafe(loop.call_later, grace, previous, signum, frame)

    signal.signal(signal.SIGTERM, on_sigterm)
    return lambda: signal.signal(signal.SIGTERM, previous)
