"""The Open Inference Protocol (KServe v2) REST API, with the binary tensor data and model repository extensions.

A thin adapter: health is the service's readiness, metadata is the registry's, `infer` runs the
same pipeline as `/segment` (service/v2_inference.py), and load/unload are the same calls as
`/v1/models/{name}/load|unload`. Errors are the protocol's `{"error": "..."}` (service/api/errors.py).
"""

from __future__ import annotations

import asyncio
import json
from http import HTTPStatus
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from service.api.auth import api_key_guard, require_api_key
from service.api.dependencies import ModelRef, State, ready_model
from service.api.errors import V2_PREFIX
from service.errors import ServiceError
from service.model_control import load_model, unload_model
from service.oip import HEADER_LENGTH, bad_request, encode_response, parse_request
from service.registry import Model, ModelRegistry, ReadyModel
from service.repository import RepositoryError
from service.telemetry import Timings
from service.v2_inference import infer, model_metadata

router = APIRouter(prefix=V2_PREFIX, tags=["open inference protocol (v2)"])
probes = APIRouter(prefix=V2_PREFIX, tags=["open inference protocol (v2)"],
                   dependencies=[Depends(api_key_guard("open_probes"))])
guarded = [Depends(require_api_key)]
EXTENSIONS = ["binary_tensor_data", "model_repository"]


class V2Error(BaseModel):
    error: str = Field(description="What went wrong.", examples=["no model named 'nope'"])


def v2_errors(*statuses: int) -> dict[int | str, dict]:
    """OpenAPI `responses` for the protocol's error statuses, all with its error body."""
    return {status: {"model": V2Error, "description": HTTPStatus(status).phrase} for status in statuses}


async def _from_path(name: str, version: str | None = None) -> ModelRef:
    """`version`: the path's on /versions/{version}/infer, else an optional query parameter."""
    return ModelRef(name, _version(version))


PathModel = Annotated[ReadyModel, ready_model(_from_path)]


_INFER_OK = {200: {"description": "JSON, or JSON then binary outputs (length in Inference-Header-Content-Length).",
                   "content": {"application/json": {"schema": {"type": "object"}},
                               "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}}


@router.get("", summary="Server metadata", dependencies=guarded, responses=v2_errors(401))
async def server_metadata(request: Request) -> dict:
    return {"name": "deeplab-serve", "version": request.app.version, "extensions": EXTENSIONS}


@probes.get("/health/live", summary="Liveness (200 true, 400 false)", responses=v2_errors(400, 401))
async def live(state: State) -> JSONResponse:
    alive = not state.registry.failing_models()
    return JSONResponse({"live": alive}, status_code=200 if alive else 400)


@probes.get("/health/ready", summary="Readiness, as /readyz (200 true, 400 false)", responses=v2_errors(400, 401))
async def ready(state: State) -> JSONResponse:
    is_ready = state.ready
    return JSONResponse({"ready": is_ready}, status_code=200 if is_ready else 400)


@router.get("/models/{name}", summary="Model metadata", dependencies=guarded, responses=v2_errors(401, 404, 503))
@router.get("/models/{name}/versions/{version}", summary="Model version metadata", dependencies=guarded,
            responses=v2_errors(401, 404, 503))
async def metadata(name: str, state: State, version: str | None = None) -> dict:
    model = _model(state.registry, name, version)
    if model.card is None:
        raise ServiceError(503, "model_unavailable", f"model {name!r} has no readable card: {model.error}")
    return model_metadata(model, model.card)


@router.get("/models/{name}/ready", summary="Model readiness (200 true, 400 false)", dependencies=guarded,
            responses=v2_errors(400, 401, 404))
@router.get("/models/{name}/versions/{version}/ready", summary="Model version readiness", dependencies=guarded,
            responses=v2_errors(400, 401, 404))
async def model_ready(name: str, state: State, version: str | None = None) -> JSONResponse:
    _model(state.registry, name, version)
    try:
        state.registry.get(name, _version(version))
    except ServiceError:
        return JSONResponse({"name": name, "ready": False}, status_code=400)
    return JSONResponse({"name": name, "ready": True})


@router.post("/models/{name}/infer", summary="Inference", dependencies=guarded, response_class=Response,
             responses={**_INFER_OK, **v2_errors(400, 401, 404, 413, 503, 504)})
@router.post("/models/{name}/versions/{version}/infer", summary="Inference on one version", dependencies=guarded,
             response_class=Response, responses={**_INFER_OK, **v2_errors(400, 401, 404, 413, 503, 504)})
async def model_infer(model: PathModel, request: Request, state: State) -> Response:
    """JSON, or JSON then binary tensors (`Inference-Header-Content-Length`); see service/v2_inference.py."""
    body = await request.body()
    parsed = await asyncio.to_thread(parse_request, body, request.headers.get(HEADER_LENGTH))
    timings = Timings(model.name)
    outputs = await infer(model, parsed, crf_pool=state.crf_pool,
                          max_image_pixels=state.settings.limits.max_image_pixels, timings=timings)
    payload, headers = await asyncio.to_thread(encode_response, model.name, str(model.version), parsed.id, outputs)
    headers |= {"X-Model": model.name, "X-Model-Version": str(model.version), "X-Backend": model.backend.name,
                "Server-Timing": timings.server_timing()}
    return Response(payload, headers=headers)


@router.post("/repository/index", summary="Every model in the repository and its state", dependencies=guarded,
             responses=v2_errors(400, 401))
async def repository_index(request: Request, state: State) -> list[dict]:
    """Per version: READY (serving), LOADING, or UNAVAILABLE with the reason; `{"ready": true}` keeps only READY."""
    only_ready = _json_object(await request.body()).get("ready") is True
    registry = state.registry
    try:
        on_disk, problem = registry.scan(), None
    except RepositoryError as exc:  # reported per version, not raised: the loaded models are still listed
        on_disk, problem = {}, str(exc)
    rows = []
    for name in sorted(set(on_disk) | set(registry.models)):
        model = registry.models.get(name)
        known = {version: (status, error) for version, status, error in model.versions()} if model else {}
        for version in sorted(set(known) | set(on_disk.get(name, {})), reverse=True):
            status, error = known.get(version, ("unloaded", problem))
            shown = {"ready": "READY", "loading": "LOADING"}.get(status, "UNAVAILABLE")
            row = {"name": name, "version": str(version), "state": shown}
            if shown == "UNAVAILABLE":
                row["reason"] = error or "not loaded"
            if shown == "READY" or not only_ready:
                rows.append(row)
    return rows


@router.post("/repository/models/{name}/load", summary="Load or reload a model (explicit mode)",
             dependencies=guarded, responses=v2_errors(400, 401, 404, 409, 503))
async def repository_load(name: str, request: Request, state: State) -> JSONResponse:
    """As Triton: an empty body or `{"parameters": {}}`; overriding the config or files is not supported."""
    if _json_object(await request.body()).get("parameters"):
        raise bad_request("load parameters (config or file overrides) are not supported; "
                          "put the model's files in the repository")
    await load_model(state.registry, name)
    return JSONResponse({})


@router.post("/repository/models/{name}/unload", summary="Unload a model (explicit mode)", dependencies=guarded,
             responses=v2_errors(400, 401, 404, 409))
async def repository_unload(name: str, request: Request, state: State) -> JSONResponse:
    _json_object(await request.body())
    await unload_model(state.registry, name)
    return JSONResponse({})


def _model(registry: ModelRegistry, name: str, version: str | None) -> Model:
    model = registry.models.get(name)
    if model is None:
        raise ServiceError(404, "model_not_found", f"no model named {name!r}")
    number = _version(version)
    if number is not None and number not in {v for v, _, _ in model.versions()}:
        raise ServiceError(404, "version_not_found", f"model {name!r} has no version {version}")
    return model


def _version(version: str | None) -> int | None:
    if version is None:
        return None
    if not (version.isascii() and version.isdigit()) or int(version) < 1:  # "²".isdigit(), int("²") fails
        raise ServiceError(404, "version_not_found", f"model versions are positive integers, not {version!r}")
    return int(version)


def _json_object(body: bytes) -> dict:
    """A repository request's body: empty, or a JSON object."""
    if not body.strip():
        return {}
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        document = None
    if not isinstance(document, dict):
        raise bad_request("the body must be empty or a JSON object")
    return document
