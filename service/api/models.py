"""GET /v1/models and /v1/models/{name}: the cards plus how each model is being served."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from service.api.auth import require_api_key
from service.api.errors import error_responses
from service.api.schemas import BatchLimits, ModelDetail, ModelList, ModelSummary
from service.errors import ServiceError
from service.registry import ModelEntry

router = APIRouter(prefix="/v1/models", tags=["models"], dependencies=[Depends(require_api_key)])


def _summary(entry: ModelEntry) -> dict:
    card, backend, policy = entry.card, entry.backend, entry.policy
    return {
        "name": entry.name,
        "status": entry.status,
        "error": entry.error,
        "description": card.description if card else None,
        "classes": card.class_names if card else [],
        "input_size": card.input_size if card else None,
        "backend": backend.name if backend else None,
        "precision": backend.precision if backend else None,
        "batching": BatchLimits(
            max_batch_size=policy.max_batch_size, max_delay_ms=policy.max_delay_ms,
            max_queue_size=policy.max_queue_size, request_timeout_s=policy.timeout_s,
        ) if policy else None,
    }


@router.get("", response_model=ModelList, summary="List the models", responses=error_responses(401))
async def list_models(request: Request) -> ModelList:
    registry = request.app.state.service.registry
    return ModelList(
        default=registry.default_name(),
        models=[ModelSummary(**_summary(entry)) for _, entry in sorted(registry.entries.items())],
    )


@router.get("/{name}", response_model=ModelDetail, summary="One model's card and serving details",
            responses=error_responses(401, 404))
async def get_model(name: str, request: Request) -> ModelDetail:
    entry = request.app.state.service.registry.entries.get(name)
    if entry is None:
        raise ServiceError(404, "model_not_found", f"no model named {name!r}")
    card = entry.card.to_json() if entry.card else None
    return ModelDetail(**_summary(entry), card=card)
