"""One error type for everything a client can get wrong or the service cannot do right now.

Every module raises `ServiceError`; the API turns it into `{"error": {"code", "message"}}` with its
HTTP status, so the JSON shape and the status live in exactly one place.
"""

from __future__ import annotations


class ServiceError(Exception):
    """A failure with an HTTP status, a stable machine-readable code and a human message."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def payload_too_large(message: str) -> ServiceError:
    return ServiceError(413, "payload_too_large", message)


def unsupported_media_type(message: str) -> ServiceError:
    return ServiceError(415, "unsupported_media_type", message)


def bad_image(message: str) -> ServiceError:
    return ServiceError(400, "invalid_image", message)
