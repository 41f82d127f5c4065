"""GET /metrics: Prometheus text exposition (merged across worker processes)."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import Response

from service.api.auth import api_key_guard
from service.telemetry import render_metrics

router = APIRouter(tags=["probes"], dependencies=[Depends(api_key_guard("open_metrics"))])


@router.get("/metrics", summary="Prometheus metrics", response_class=Response,
            responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}},
                             "description": "Prometheus text format 0.0.4."}})
async def metrics() -> Response:
    body, content_type = render_metrics()
    return Response(body, media_type=content_type)
