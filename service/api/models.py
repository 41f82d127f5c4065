"""GET /v1/models[/{name}]: the cards plus how each model and version is served; POST .../load|unload (explicit)."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from service.api.auth import require_api_key
from service.api.dependencies import State
from service.api.errors import error_responses
from service.api.schemas import BatchLimits, ModelDetail, ModelList, ModelSummary, VersionState
from service.errors import ServiceError
from service.model_control import load_model, unload_model
from service.registry import Model, ModelRegistry

router = APIRouter(prefix="/v1/models", tags=["models"], dependencies=[Depends(require_api_key)])


def _summary(model: Model) -> dict:
    latest, card = model.latest, model.card
    policy = latest.policy if latest else None
    return {
        "name": model.name,
        "status": model.status,
        "error": model.error,
        "version": latest.version if latest else None,
        "versions": [VersionState(version=v, status=status, error=error) for v, status, error in model.versions()],
        "description": card.description if card else None,
        "classes": card.class_names if card else [],
        "input_size": card.input_size if card else None,
        "backend": latest.backend.name if latest else None,
        "precision": latest.backend.precision if latest else None,
        "batching": BatchLimits(
            max_batch_size=policy.max_batch_size, max_delay_ms=policy.max_delay_ms,
            max_queue_size=policy.max_queue_size, request_timeout_s=policy.timeout_s,
        ) if policy else None,
    }


def _detail(registry: ModelRegistry, name: str) -> ModelDetail:
    model = registry.models.get(name)
    if model is None:
        raise ServiceError(404, "model_not_found", f"no model named {name!r}")
    card = model.card.to_json() if model.card else None
    return ModelDetail(**_summary(model), card=card)


@router.get("", response_model=ModelList, summary="List the models", responses=error_responses(401))
async def list_models(state: State) -> ModelList:
    registry = state.registry
    return ModelList(
        default=registry.default_name(),
        models=[ModelSummary(**_summary(model)) for _, model in sorted(registry.models.items())],
    )


@router.get("/{name}", response_model=ModelDetail, summary="One model's card, versions and serving details",
            responses=error_responses(401, 404))
async def get_model(name: str, state: State) -> ModelDetail:
    return _detail(state.registry, name)


@router.post("/{name}/load", response_model=ModelDetail, summary="Load or reload a model (--model-control explicit)",
             responses=error_responses(400, 401, 404, 409, 503))
async def load(name: str, state: State) -> ModelDetail:
    """Loads the newest version(s) beside what serves and swaps them in when ready; 400 if one fails."""
    await load_model(state.registry, name)
    return _detail(state.registry, name)


@router.post("/{name}/unload", status_code=204, summary="Unload a model (--model-control explicit)",
             responses=error_responses(401, 404, 409))
async def unload(name: str, state: State) -> None:
    """New requests get 404 at once; queued ones finish; then the engines are released."""
    await unload_model(state.registry, name)
