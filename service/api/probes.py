"""GET /healthz (liveness) and /readyz (readiness): what an orchestrator asks."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from service.api.auth import api_key_guard
from service.api.dependencies import State
from service.api.schemas import Health, ModelReadiness, Readiness

router = APIRouter(tags=["probes"], dependencies=[Depends(api_key_guard("open_probes"))])


@router.get("/healthz", response_model=Health, summary="Liveness: the process and its backends work",
            responses={503: {"model": Health, "description": "A backend keeps failing; restart the process."}})
async def healthz(state: State) -> JSONResponse:
    failing = state.registry.failing_models()
    if not failing:
        return JSONResponse(Health(status="ok").model_dump())
    detail = f"inference keeps failing for: {', '.join(failing)}"
    return JSONResponse(Health(status="unhealthy", detail=detail).model_dump(), status_code=503)


@router.get("/readyz", response_model=Readiness, summary="Readiness: every model loaded and warmed up",
            responses={503: {"model": Readiness, "description": "Loading, a model failed, or draining."}})
async def readyz(state: State) -> JSONResponse:
    registry = state.registry
    models = {name: ModelReadiness(status=m.status, error=m.error, version=m.latest and m.latest.version)
              for name, m in registry.models.items()}
    if state.draining:
        status = "draining"
    elif state.ready:
        status = "ready"
    elif state.problem or any(m.status == "failed" for m in registry.models.values()):
        status = "failed"
    else:
        status = "loading"
    body = Readiness(status=status, problem=state.problem, models=models)
    return JSONResponse(body.model_dump(mode="json"), status_code=200 if status == "ready" else 503)
