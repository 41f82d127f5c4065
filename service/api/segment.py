"""POST /segment and POST /segment/batch: parse the upload(s), run the pipeline, shape the response."""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from typing import Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from service.api.auth import require_api_key
from service.api.dependencies import QueryModel, State
from service.api.errors import error_responses
from service.api.schemas import BatchResponse, PolygonsResponse, RleWithUncertainty
from service.backends import SPECS
from service.errors import ServiceError, payload_too_large
from service.formats import NPY_MEDIA_TYPE, OutputFormat, OutputOptions
from service.imaging import ADVERTISED_TYPES, check_content_type, decode_base64_image
from service.polygons import PolygonOptions
from service.registry import ReadyModel
from service.segmentation import segment
from service.telemetry import Timings

log = logging.getLogger(__name__)
router = APIRouter(tags=["segmentation"])

_BINARY = {"schema": {"type": "string", "format": "binary"}}
_REQUEST_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {"type": "object", "required": ["image"],
                       "properties": {"image": {"type": "string", "format": "binary"}}},
        },
        **{media_type: _BINARY for media_type in ADVERTISED_TYPES},
    },
}
_BATCH_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {"type": "object", "required": ["images"],
                       "properties": {"images": {"type": "array", "items": {"type": "string", "format": "binary"}}}},
        },
        "application/json": {
            "schema": {"type": "object", "required": ["images"],
                       "properties": {"images": {"type": "array", "items": {"type": "string", "format": "byte"},
                                                 "description": "Base64-encoded image files."}}},
            "example": {"images": ["/9j/4AAQSkZJRgABAQ...", "iVBORw0KGgoAAAANSUhEUg..."]},
        },
    },
}
_HEADERS = {
    "X-Model": {"description": "The model that answered.", "schema": {"type": "string"}},
    "X-Model-Version": {"description": "Its version.", "schema": {"type": "string"}},
    "X-Backend": {"description": f"The engine that ran it ({', '.join(spec.name for spec in SPECS)}).",
                  "schema": {"type": "string"}},
    "Server-Timing": {"description": "Milliseconds per stage: decode, preprocess, queue, infer, crf, encode "
                                     "(a batch: summed over its images).", "schema": {"type": "string"}},
}
_OK = {
    "description": (
        "Everything at the original (EXIF-rotated) width x height.\n\n"
        "- `png` (`image/png`): indexed PNG, pixel = class id, the card's palette.\n"
        "- `rle` (`application/json`): COCO compressed RLE per class present.\n"
        "- `probabilities` (`application/x-npy`): uint8 [height, width, classes], probability x 255, "
        "read with `np.load(io.BytesIO(body)) / 255`. Why `.npy` of uint8: one line of NumPy reads it with its "
        "shape and dtype (per-class PNGs in a zip need an archive and C decodes); 1/255 resolution is finer "
        "than any calibration the model has and is 4x smaller than float32, 2x smaller than float16. Each "
        "pixel's argmax is the label the same request's other outputs use (ties from rounding are broken "
        "towards it); each pixel sums to 255 within (classes + 2) / 2.\n"
        "- `uncertainty` (`image/png`): 8-bit grey, normalised entropy per pixel: 0 certain, 255 uniform.\n"
        "- `polygons` (`application/json`): per class, regions as polygons with holes, COCO form and GeoJSON.\n"
        "- `overlay` (`image/jpeg`): the image with the palette-coloured mask blended in at `alpha`, class "
        "outlines opaque.\n\n"
        "Labels: with `probabilities`, `uncertainty` or `uncertainty=true` the probabilities are resized "
        "bilinearly and the labels are their argmax; otherwise the model's labels are resized "
        "nearest-neighbour (faster; they differ only on a few border pixels)."
    ),
    "content": {
        "image/png": _BINARY,
        "image/jpeg": _BINARY,
        NPY_MEDIA_TYPE: _BINARY,
        "application/json": {
            "examples": {
                "rle": {"summary": "format=rle&uncertainty=true", "value": {
                    "model": "polyp", "width": 622, "height": 529,
                    "classes": [{"id": 1, "name": "polyp", "area": 48211,
                                 "rle": {"size": [529, 622], "counts": "Xc83`?2N2N1O"}}],
                    "uncertainty": {"mean_entropy": 0.061, "entropy_threshold": 0.5, "high_entropy_fraction": 0.032,
                                    "class_confidence": {"background": 0.962, "polyp": 0.871}}}},
                "polygons": {"summary": "format=polygons&tolerance=1&min_area=20",
                             "value": PolygonsResponse.model_config["json_schema_extra"]["examples"][0]},
            },
        },
    },
    "model": RleWithUncertainty | PolygonsResponse,
    "headers": _HEADERS,
}


@dataclass(frozen=True)
class _Common:
    crf: bool
    uncertainty: bool
    polygon_options: PolygonOptions


async def _common(
    crf: bool = Query(False, description="Refine with a dense CRF (slower); combines with every format."),
    uncertainty: bool = Query(False, description="JSON formats: add mean entropy, the share of uncertain pixels "
                                                 "and per-class mean confidence."),
    tolerance: float = Query(0.0, ge=0, le=100, description="polygons: simplification tolerance in pixels "
                                                           "(0 = exact pixel edges)."),
    min_area: float = Query(0.0, ge=0, description="polygons: drop regions and holes smaller than this (pixels)."),
) -> _Common:
    return _Common(crf, uncertainty, PolygonOptions(tolerance, min_area))


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
    model: QueryModel,
    state: State,
    common: _Common = Depends(_common),
    output_format: OutputFormat = Query(
        "png", alias="format",
        description="png | rle | probabilities | uncertainty | polygons | overlay (see the 200 response)."),
    alpha: float = Query(0.5, ge=0, le=1, description="overlay: mask opacity."),
    outlines: bool = Query(True, description="overlay: draw class borders opaque."),
) -> Response:
    """Send the image as multipart field `image` or as the raw body with an `image/*` content type."""
    options = OutputOptions(output_format, common.uncertainty, common.polygon_options, alpha, outlines)
    data = await read_image(request, state.settings.limits.max_body_bytes)
    timings = Timings(model.name)
    result = await segment(
        model, data, options=options, refine=common.crf, crf_pool=state.crf_pool,
        max_image_pixels=state.settings.limits.max_image_pixels, drift=state.settings.drift, timings=timings,
    )
    return Response(result.body, media_type=result.media_type, headers=_headers(model, timings))


@router.post(
    "/segment/batch",
    summary="Segment several images in one request",
    response_class=Response,
    responses={200: {"description": "One entry per image, in order; an image that fails has an `error` and does "
                                    "not fail the others.", "model": BatchResponse, "headers": _HEADERS},
               **error_responses(400, 401, 404, 413, 415, 422, 503)},
    openapi_extra={"requestBody": _BATCH_BODY},
    dependencies=[Depends(require_api_key)],
)
async def segment_batch(
    request: Request,
    model: QueryModel,  # one version for every image
    state: State,
    common: _Common = Depends(_common),
    output_format: Literal["rle", "polygons"] = Query("rle", alias="format", description="rle | polygons."),
) -> Response:
    """Several multipart parts named `images`, or JSON `{"images": [base64, ...]}`. All images go to the
    model's queue at once, so they share a backend batch where the batcher allows (GPU backends)."""
    options = OutputOptions(output_format, common.uncertainty, common.polygon_options)
    limits = state.settings.limits
    uploads = await read_images(request, limits.max_body_bytes, limits.max_batch_images)
    timings = Timings(model.name)

    async def one(upload: _Upload) -> bytes:
        if isinstance(upload.data, ServiceError):
            raise upload.data
        result = await segment(
            model, upload.data, options=options, refine=common.crf, crf_pool=state.crf_pool,
            max_image_pixels=limits.max_image_pixels, drift=state.settings.drift, timings=timings,
        )
        return result.body

    outcomes = await asyncio.gather(*(one(upload) for upload in uploads), return_exceptions=True)
    entries = [_batch_entry(index, upload.filename, outcome)
               for index, (upload, outcome) in enumerate(zip(uploads, outcomes, strict=True))]
    head = json.dumps({"model": model.name, "format": output_format})[:-1].encode()
    body = head + b',"results":[' + b",".join(entries) + b"]}"
    return Response(body, media_type="application/json", headers=_headers(model, timings))


def _headers(model: ReadyModel, timings: Timings) -> dict[str, str]:
    return {"X-Model": model.name, "X-Model-Version": str(model.version), "X-Backend": model.backend.name,
            "Server-Timing": timings.server_timing()}


def _batch_entry(index: int, filename: str | None, outcome: bytes | BaseException) -> bytes:
    """One entry of the batch answer; the image's own JSON is spliced in as it was encoded."""
    head = json.dumps({"index": index, "filename": filename})[:-1].encode()
    if isinstance(outcome, bytes):
        return head + b',"result":' + outcome + b"}"
    if isinstance(outcome, ServiceError):
        error = {"status": outcome.status, "code": outcome.code, "message": outcome.message}
    elif isinstance(outcome, Exception):
        log.error("batch image %d failed", index, exc_info=outcome)
        error = {"status": 500, "code": "internal_error", "message": f"{type(outcome).__name__}: {outcome}"}
    else:
        raise outcome  # cancellation and the like: not this image's failure
    return head + b',"error":' + json.dumps(error).encode() + b"}"


async def read_image(request: Request, max_bytes: int) -> bytes:
    """The image bytes from a multipart field `image` or a raw `image/*` body (415 for anything else)."""
    content_type = request.headers.get("content-type", "")
    if _media_type(content_type) != "multipart/form-data":
        check_content_type(content_type)
        return await request.body()
    async with request.form(max_files=1, max_fields=16, max_part_size=max_bytes) as form:
        upload = form.get("image")
        if not isinstance(upload, UploadFile):
            raise ServiceError(400, "missing_image", "the multipart body has no file field named 'image'")
        return await _upload_bytes(upload)


@dataclass(frozen=True)
class _Upload:
    filename: str | None
    data: bytes | ServiceError  # an image that cannot be read fails alone


async def read_images(request: Request, max_bytes: int, max_images: int) -> list[_Upload]:
    """The images of a batch: multipart parts named `images`, or JSON `{"images": [base64, ...]}`;
    413 past `max_images`, 400 for a body that holds no images at all."""
    media_type = _media_type(request.headers.get("content-type", ""))
    if media_type == "application/json":
        uploads = _json_images(await request.body(), max_images)
    elif media_type == "multipart/form-data":
        uploads = await _multipart_images(request, max_bytes, max_images)
    else:
        raise ServiceError(415, "unsupported_media_type",
                           f"a batch is multipart/form-data (parts named 'images') or application/json, "
                           f"not {media_type or '(none)'!r}")
    if not uploads:
        raise ServiceError(400, "missing_image", "the batch holds no images")
    return uploads


async def _multipart_images(request: Request, max_bytes: int, max_images: int) -> list[_Upload]:
    try:
        async with request.form(max_files=max_images, max_fields=16, max_part_size=max_bytes) as form:
            uploads = []
            for upload in form.getlist("images"):
                if not isinstance(upload, UploadFile):
                    raise ServiceError(400, "missing_image", "every 'images' part must be a file")
                try:
                    uploads.append(_Upload(upload.filename, await _upload_bytes(upload)))
                except ServiceError as exc:
                    uploads.append(_Upload(upload.filename, exc))
            return uploads
    except HTTPException as exc:
        if str(exc.detail).startswith("Too many files"):  # starlette's words for max_files
            raise _too_many(max_images) from exc
        raise


def _json_images(body: bytes, max_images: int) -> list[_Upload]:
    try:
        images = json.loads(body)["images"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ServiceError(400, "invalid_request", 'a JSON batch is {"images": ["<base64>", ...]}') from exc
    if not isinstance(images, list):
        raise ServiceError(400, "invalid_request", '"images" must be a list of base64 strings')
    if len(images) > max_images:
        raise _too_many(max_images)
    return [_Upload(None, _base64_image(item)) for item in images]


def _base64_image(item: object) -> bytes | ServiceError:
    try:
        return decode_base64_image(item)
    except ServiceError as exc:
        return exc


def _too_many(max_images: int) -> ServiceError:
    return payload_too_large(f"a batch holds at most {max_images} images (setting limits.max_batch_images)")


async def _upload_bytes(upload: UploadFile) -> bytes:
    """A file part's bytes; a declared type must be an image type (generic ones are sniffed by the decoder)."""
    if upload.content_type not in (None, "application/octet-stream"):
        check_content_type(upload.content_type)
    return await upload.read()


def _media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()
