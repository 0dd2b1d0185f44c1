"""Request plumbing below the routes: the body-size limit, request metrics and gzip request bodies.

:class:`BodyGuard` is pure ASGI middleware (no ``BaseHTTPMiddleware``, whose extra task per request costs
latency): it refuses a body over ``max_body_bytes`` (413, from ``Content-Length`` before reading, or while
reading a chunked body) and counts every request by route template and status in :mod:`~tinyact.cloud.metrics`.
"""

from __future__ import annotations

import contextlib
import time
import zlib
from typing import Any

from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tinyact.cloud.errors import APIError
from tinyact.cloud.metrics import Metrics


class BodyTooLarge(Exception):
    """A request body grew over the limit while it was read (no or a false ``Content-Length``)."""


def too_large(limit: int) -> APIError:
    """The 413 answer for a body over ``limit`` bytes."""
    return APIError(413, "body_too_large", f"request body is over {limit} bytes: send fewer clips per request")


def error_response(error: APIError) -> JSONResponse:
    """``error`` as its JSON answer."""
    return JSONResponse(error.body(), status_code=error.status, headers=error.headers)


def gunzip(raw: bytes, limit: int) -> bytes:
    """A gzip request body (the edge compresses when it saves bytes), inflated to at most ``limit`` bytes so
    a small body cannot expand into a huge one.

    Raises:
        APIError: 422 for a body that is not gzip, 413 for one that inflates beyond ``limit``.
    """
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        body = inflater.decompress(raw, limit + 1)
    except zlib.error:
        raise APIError(422, "invalid_request", "Content-Encoding gzip, but the body is not valid gzip") from None
    if len(body) > limit or inflater.unconsumed_tail:
        raise too_large(limit)
    return body


class BodyGuard:
    """Pure ASGI middleware: refuses bodies over ``max_body_bytes`` (413) and records request metrics."""

    def __init__(self, app: ASGIApp, max_body_bytes: int, metrics: Metrics) -> None:
        self.app = app
        self.limit = max_body_bytes
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if _declared_length(scope) > self.limit:
            self.metrics.rejects.labels("body_too_large").inc()
            await error_response(too_large(self.limit))(scope, _no_body, send)
            self._observe(scope, 413, 0.0)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise BodyTooLarge()
            return message

        status = 500
        start = time.perf_counter()

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, limited_receive, send_wrapper)
        finally:
            self._observe(scope, status, time.perf_counter() - start)

    def _observe(self, scope: Scope, status: int, seconds: float) -> None:
        route: Any = scope.get("route")
        path = getattr(route, "path", None) or ("static" if scope["path"].startswith("/static/") else "unmatched")
        self.metrics.requests.labels(scope["method"], path, str(status)).inc()
        if seconds:
            self.metrics.latency.labels(path).observe(seconds)


def _declared_length(scope: Scope) -> int:
    """The largest ``Content-Length`` the request declares (0 when none is a number)."""
    lengths = [0]
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            with contextlib.suppress(ValueError):
                lengths.append(int(value))
    return max(lengths)


async def _no_body() -> Message:
    """``receive`` for an answer sent without reading the request."""
    return {"type": "http.disconnect"}
