"""Optional API key: `Authorization: Bearer <key>` or `X-API-Key: <key>`, compared in constant time."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Literal

from fastapi import Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from service.api.dependencies import State
from service.errors import ServiceError

_bearer = HTTPBearer(auto_error=False, description="The API key as a bearer token.")
_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="The API key.")


def api_key_guard(open_when: Literal["open_probes", "open_metrics"] | None = None) -> Callable[..., Awaitable[None]]:
    """A dependency that demands the key when one is configured, unless the named setting opens the route."""

    async def guard(
        state: State,
        bearer: HTTPAuthorizationCredentials | None = Security(_bearer),
        header_key: str | None = Security(_header),
    ) -> None:
        auth = state.settings.auth
        if auth.api_key is None or (open_when is not None and getattr(auth, open_when)):
            return
        given = header_key if header_key is not None else (bearer.credentials if bearer else None)
        if given is None or not hmac.compare_digest(given.encode(), auth.api_key.get_secret_value().encode()):
            raise ServiceError(401, "unauthorized", "a valid API key is required (Authorization: Bearer or X-API-Key)",
                               {"WWW-Authenticate": "Bearer"})

    return guard


require_api_key = api_key_guard()
