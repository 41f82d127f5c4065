"""Two pure-ASGI middlewares: request metrics (outermost, so it counts every answer) and the body limit."""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service import telemetry
from service.api.errors import error_response
from service.errors import payload_too_large


class RequestMetricsMiddleware:
    """Counts, times and gauges every HTTP request by its route template (bounded label values)."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        telemetry.IN_FLIGHT.inc()
        try:
            await self.app(scope, receive, send_with_status)
        finally:
            telemetry.IN_FLIGHT.dec()
            route = scope.get("route")
            template = getattr(route, "path", "unmatched")
            method = scope["method"]
            telemetry.REQUESTS.labels(route=template, method=method, status=str(status)).inc()
            telemetry.REQUEST_DURATION.labels(route=template, method=method).observe(time.perf_counter() - start)


class BodyLimitMiddleware:
    """Refuses bodies over `max_bytes` with the JSON 413: at once from Content-Length, else as bytes arrive.

    Own code rather than FastAPI's `max_body_size`: that one answers a declared oversize body in
    plain text, bypassing the app's error handlers. A streamed body that crosses the limit raises
    the 413 `ServiceError` inside the route's read, where the error handler shapes it.
    """

    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            message = f"request body of {int(declared)} bytes exceeds the limit of {self.max_bytes} bytes"
            response = error_response(413, "payload_too_large", message, {"Connection": "close"}, scope["path"])
            await response(scope, receive, send)
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise payload_too_large(f"request body exceeds the limit of {self.max_bytes} bytes")
            return message

        await self.app(scope, counting_receive, send)
