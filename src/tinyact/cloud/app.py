"""The HTTP service as an ASGI app: ``create_app(config)`` builds it; ``/docs`` shows the OpenAPI description.

The routes live in :mod:`tinyact.cloud.api` (one router per area), who may call them in
:mod:`tinyact.cloud.auth`, the body limit and request metrics in :mod:`tinyact.cloud.middleware`, and the work
itself in :class:`~tinyact.cloud.service.CloudService`. Here: the error answers and the OpenAPI additions.

Every 4xx/5xx body is a :class:`tinyact.wire.ErrorOut` ``{"error": code, "detail": sentence}``.
"""

from __future__ import annotations

import logging
import os
import traceback
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from tinyact.cloud.api import ROUTERS, admin
from tinyact.cloud.api.dashboard import STATIC
from tinyact.cloud.config import ADMIN_TOKEN_ENV, VIEWER_TOKEN_ENV, CloudConfig, env_token, resolve_db_url
from tinyact.cloud.db.engine import make_engine
from tinyact.cloud.errors import APIError
from tinyact.cloud.middleware import BodyGuard, BodyTooLarge, error_response, too_large
from tinyact.cloud.service import CloudService
from tinyact.wire import ClipsIn

logger = logging.getLogger(__name__)


class CloudAPI(FastAPI):
    """FastAPI with the schemas of the bodies that routes read themselves (after authentication) added to the
    OpenAPI description: ``ClipsIn`` (``POST /v1/clips``, one fast JSON parse) and the admin bodies."""

    def openapi(self) -> dict[str, Any]:
        if self.openapi_schema is None:
            schema = get_openapi(title=self.title, version=self.version, summary=self.summary, routes=self.routes)
            body = ClipsIn.model_json_schema(ref_template="#/components/schemas/{model}")
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            components.update(body.pop("$defs", {}))
            components["ClipsIn"] = body
            for model in admin.BODIES:
                components[model.__name__] = model.model_json_schema(ref_template="#/components/schemas/{model}")
            self.openapi_schema = schema
        return self.openapi_schema


def create_app(
    config: CloudConfig | None = None,
    *,
    admin_token: str | None = None,
    viewer_token: str | None = None,
) -> FastAPI:
    """The service as an ASGI app. Tokens default to ``$TINYACT_ADMIN_TOKEN`` / ``$TINYACT_VIEWER_TOKEN``.

    The database, model and MQTT connection are opened by the app's lifespan (uvicorn, or
    ``with TestClient(app)``), not here.
    """
    config = config or CloudConfig()
    engine = make_engine(resolve_db_url(config.db))
    service = CloudService(
        config,
        engine,
        admin_token=admin_token or env_token(ADMIN_TOKEN_ENV),
        viewer_token=viewer_token or env_token(VIEWER_TOKEN_ENV),
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await service.start()
        try:
            yield
        finally:
            await service.stop()

    app = CloudAPI(
        title="TinyAct cloud",
        version="1",
        summary="Classifies 1024-d clip latents sent by edge devices; stores, sends back, exports and shows results.",
        lifespan=lifespan,
    )
    app.state.service = service
    for router in ROUTERS:
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_middleware(BodyGuard, max_body_bytes=config.max_body_bytes, metrics=service.metrics)
    _add_error_handlers(app, service)
    return app


def _add_error_handlers(app: FastAPI, service: CloudService) -> None:
    """Every refusal and failure as an ``ErrorOut`` body, counted by reason in ``tinyact_rejects``."""

    @app.exception_handler(APIError)
    async def _api_error(request: Request, error: APIError) -> JSONResponse:
        if error.status < 500 and error.code != "rate_limited":
            service.metrics.rejects.labels(error.code).inc()
        return error_response(error)

    @app.exception_handler(BodyTooLarge)
    async def _body_too_large(request: Request, error: BodyTooLarge) -> JSONResponse:
        service.metrics.rejects.labels("body_too_large").inc()
        return error_response(too_large(service.config.max_body_bytes))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        items = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")} for e in error.errors()[:20]]
        first = items[0] if items else {"loc": [], "msg": "invalid request"}
        where = ".".join(str(p) for p in first["loc"]) or "request"
        service.metrics.rejects.labels("invalid_request").inc()
        return JSONResponse({"error": "invalid_request", "detail": f"{where}: {first['msg']}", "errors": items}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, error: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(error.status_code, "http_error")
        return JSONResponse({"error": code, "detail": str(error.detail)}, status_code=error.status_code,
                            headers=getattr(error, "headers", None))

    @app.exception_handler(Exception)
    async def _crash(request: Request, error: Exception) -> JSONResponse:
        # A plain-text traceback in the message, no exc_info: the console's RichHandler would render a rich
        # traceback (with source lines) here, in the event loop, stalling every other request.
        trace = "".join(traceback.format_exception(type(error), error, error.__traceback__, limit=20))
        logger.error("unhandled error on %s %s: %s", request.method, request.url.path, trace)
        return JSONResponse({"error": "internal", "detail": "internal error; see the service log"}, status_code=500)


def app_from_env() -> FastAPI:
    """uvicorn factory for ``--workers N``: the config comes as JSON in ``$TINYACT_CLOUD_CONFIG``."""
    return create_app(CloudConfig.model_validate_json(os.environ["TINYACT_CLOUD_CONFIG"]))
