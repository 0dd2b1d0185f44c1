"""Health and metrics, without a token: ``/healthz`` (the process answers), ``/readyz`` (the database answers
and a model is loaded: route traffic here) and ``/metrics`` (Prometheus; expose on an internal network only)."""

from __future__ import annotations

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from tinyact.cloud.api.deps import service_of

router = APIRouter(tags=["health"])


class HealthOut(BaseModel):
    status: str
    model: str | None = None
    database: str | None = None


@router.get("/healthz", response_model=HealthOut, summary="Alive")
async def healthz() -> HealthOut:
    return HealthOut(status="ok")


@router.get("/readyz", response_model=HealthOut, responses={503: {"model": HealthOut}}, summary="Ready")
async def readyz(request: Request) -> Response:
    """200 when the database answers and a model is loaded, else 503 saying which is missing."""
    service = service_of(request)
    database = await anyio.to_thread.run_sync(service.database_ok)
    model = service.registry.current
    ready = database and model is not None
    body = HealthOut(status="ready" if ready else "not ready", model=model.version if model else None,
                     database="ok" if database else "unreachable")
    return JSONResponse(body.model_dump(), status_code=200 if ready else 503)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    data, content_type = service_of(request).metrics.exposition()
    return Response(data, media_type=content_type)
