"""What routes are given instead of reaching into `request.app.state`: the service's state, and a model
version that is ready to serve, held for the route's run.

The ready-model dependency raises the registry's JSON errors (404 unknown model or version, 503
loading, failed or no models) before the route runs, so a route only ever sees a `ReadyModel`,
whose card, backend and batcher are all there.
"""

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Query, Request

from service.registry import ReadyModel
from service.state import ServiceState


async def _service_state(request: Request) -> ServiceState:
    """The state the lifespan created; the server answers no request before it has."""
    return request.app.state.service


State = Annotated[ServiceState, Depends(_service_state)]


@dataclass(frozen=True)
class ModelRef:
    """Which model a request asks for, however its route spells it (query, path)."""

    name: str | None  # None: the default model
    version: int | None  # None: the newest ready version


def ready_model(requested: Callable[..., ModelRef]) -> Any:
    """`Depends` on the ready version `requested` names, held until the route returns (not until the
    response is sent, as a yield dependency would by default): a swap releases it only afterwards."""

    # Annotations evaluated now, not postponed (no `from __future__ import annotations` here): FastAPI could not
    # resolve `requested`, a closure variable, from a string.
    async def hold(state: State, ref: Annotated[ModelRef, Depends(requested)]) -> AsyncIterator[ReadyModel]:
        async with state.registry.use(ref.name, ref.version) as model:
            yield model

    return Depends(hold, scope="function")


async def _from_query(
    model: str | None = Query(None, description="Model name (default: see GET /v1/models).", examples=["polyp"]),
    version: int | None = Query(None, ge=1, description="Model version (default: the newest ready one)."),
) -> ModelRef:
    return ModelRef(model, version)


QueryModel = Annotated[ReadyModel, ready_model(_from_query)]  # ?model=&version= (the /segment routes)
