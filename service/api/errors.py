"""Every error leaves as `{"error": {"code": ..., "message": ...}}` with its HTTP status; under /v2 (the Open
Inference Protocol) as that protocol's `{"error": "<message>"}`, with the same status."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from service.errors import ServiceError

_HTTP_CODES = {400: "bad_request", 401: "unauthorized", 404: "not_found", 405: "method_not_allowed",
               413: "payload_too_large", 415: "unsupported_media_type"}
V2_PREFIX = "/v2"


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable machine-readable reason.", examples=["queue_full"])
    message: str = Field(description="What went wrong, for people.", examples=["model 'polyp' has 32 requests queued"])


class ErrorResponse(BaseModel):
    error: ErrorDetail


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None,
                   path: str = "") -> JSONResponse:
    """The error body for a request to `path`: the service's shape, or the OIP one under /v2."""
    if path == V2_PREFIX or path.startswith(V2_PREFIX + "/"):
        return JSONResponse({"error": message}, status_code=status, headers=headers)
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ServiceError)
    async def _service_error(request: Request, exc: ServiceError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.message, exc.headers, request.url.path)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        return error_response(422, "invalid_request", problems, path=request.url.path)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, f"http_{exc.status_code}")
        return error_response(exc.status_code, code, str(exc.detail), getattr(exc, "headers", None),
                              request.url.path)


def error_responses(*statuses: int) -> dict[int | str, dict]:
    """OpenAPI `responses` entries for the given error statuses, all with the error schema."""
    descriptions = {
        400: "Undecodable or truncated image, a malformed form, or a model version that failed to load.",
        401: "Missing or wrong API key.",
        404: "Unknown model or version.",
        413: "Body larger than the byte limit, or image larger than the pixel limit.",
        409: "Model control is not explicit: load/unload are refused.",
        415: "Content type is not a supported image type.",
        422: "Invalid query parameter.",
        503: "Queue full, model loading or failed, or shutting down (see Retry-After).",
        504: "No result before the request's deadline.",
    }
    return {status: {"model": ErrorResponse, "description": descriptions[status]} for status in statuses}
