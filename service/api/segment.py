"""POST /segment: parse the upload, run the pipeline, shape the response."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from starlette.datastructures import UploadFile

from service.api.auth import require_api_key
from service.api.errors import error_responses
from service.api.schemas import RleResponse
from service.errors import ServiceError
from service.imaging import ADVERTISED_TYPES, check_content_type
from service.segmentation import segment
from service.telemetry import Timings

router = APIRouter(tags=["segmentation"])

_REQUEST_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {"type": "object", "required": ["image"],
                       "properties": {"image": {"type": "string", "format": "binary"}}},
        },
        **{media_type: {"schema": {"type": "string", "format": "binary"}}
           for media_type in ADVERTISED_TYPES},
    },
}
_OK = {
    "description": "The mask at the original width x height: an indexed PNG (pixel = class id, the card's palette) "
                   "or, with format=rle, COCO RLE per class.",
    "model": RleResponse,
    "content": {"image/png": {"schema": {"type": "string", "format": "binary"}}},
    "headers": {
        "X-Model": {"description": "The model that answered.", "schema": {"type": "string"}},
        "X-Model-Version": {"description": "Its version.", "schema": {"type": "string"}},
        "X-Backend": {"description": "The engine that ran it (onnx-cpu, onnx-cuda, tensorrt).",
                      "schema": {"type": "string"}},
        "Server-Timing": {"description": "Milliseconds per stage: decode, preprocess, queue, infer, crf, encode.",
                          "schema": {"type": "string"}},
    },
}


@router.post(
    "/segment",
    summary="Segment an image",
    response_class=Response,
    responses={200: _OK, **error_responses(400, 401, 404, 413, 415, 422, 503, 504)},
    openapi_extra={"requestBody": _REQUEST_BODY},
    dependencies=[Depends(require_api_key)],
)
async def segment_image(
    request: Request,
    model: str | None = Query(None, description="Model name (default: see GET /v1/models).", examples=["polyp"]),
    version: int | None = Query(None, ge=1, description="Model version (default: the newest ready one)."),
    output_format: Literal["png", "rle"] = Query(
        "png", alias="format", description="png: indexed PNG; rle: COCO RLE JSON."),
    crf: bool = Query(False, description="Refine boundaries with a dense CRF (slower)."),
) -> Response:
    """Send the image as multipart field `image` or as the raw body with an `image/*` content type."""
    state = request.app.state.service
    async with state.registry.use(model, version) as entry:
        data = await read_image(request, state.settings.limits.max_body_bytes)
        timings = Timings(entry.name)
        result = await segment(
            entry, data, output_format=output_format, refine=crf, crf_pool=state.crf_pool,
            max_image_pixels=state.settings.limits.max_image_pixels, timings=timings,
        )
        headers = {"X-Model": entry.name, "X-Model-Version": str(entry.version), "X-Backend": entry.backend.name,
                   "Server-Timing": timings.server_timing()}
    return Response(result.body, media_type=result.media_type, headers=headers)


async def read_image(request: Request, max_bytes: int) -> bytes:
    """The image bytes from a multipart field `image` or a raw `image/*` body (415 for anything else)."""
    content_type = request.headers.get("content-type", "")
    if content_type.split(";", 1)[0].strip().lower() != "multipart/form-data":
        check_content_type(content_type)
        return await request.body()
    async with request.form(max_files=1, max_fields=16, max_part_size=max_bytes) as form:
        upload = form.get("image")
        if not isinstance(upload, UploadFile):
            raise ServiceError(400, "missing_image", "the multipart body has no file field named 'image'")
        if upload.content_type not in (None, "application/octet-stream"):  # generic: sniffed by the decoder
            check_content_type(upload.content_type)
        return await upload.read()

