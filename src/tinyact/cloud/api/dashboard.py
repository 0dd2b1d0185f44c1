"""The dashboard: its page (``GET /``, static files, no CDN) and the data it polls (viewer or admin token).

Aggregation happens in the database (:mod:`tinyact.cloud.analytics`); a prediction row is a
:class:`tinyact.wire.StoredPrediction` as JSON, the same row an export holds.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse

from tinyact.cloud import analytics
from tinyact.cloud.api.deps import ERRORS, MAX_CURSOR, service_of
from tinyact.cloud.auth import Principal, viewer_principal

STATIC = Path(__file__).resolve().parents[1] / "static"
router = APIRouter(tags=["dashboard"])
Viewer = Annotated[Principal, Depends(viewer_principal)]


@router.get("/v1/dashboard/summary", responses=ERRORS, summary="Counts and last action per camera")
async def dashboard_summary(
    request: Request, who: Viewer, hours: Annotated[float, Query(gt=0, le=24 * 366)] = 24,
) -> dict[str, Any]:
    service = service_of(request)
    since = datetime.now(UTC) - timedelta(hours=hours)
    cams = await anyio.to_thread.run_sync(analytics.camera_summary, service.engine, since)
    model = service.registry.current
    return {
        "hours": hours,
        "cameras": cams,
        "total": sum(c["count"] for c in cams),
        "model": model.describe() if model else None,
        "role": who.role,
    }


@router.get("/v1/dashboard/timeline", responses=ERRORS, summary="Clips per label over time")
async def dashboard_timeline(
    request: Request, who: Viewer,
    hours: Annotated[float, Query(gt=0, le=24 * 366)] = 24,
    buckets: Annotated[int, Query(ge=2, le=500)] = 60,
) -> dict[str, Any]:
    end = datetime.now(UTC)
    start = end - timedelta(hours=hours)
    bucket = analytics.nice_bucket(hours * 3600, buckets)
    return await anyio.to_thread.run_sync(analytics.timeline, service_of(request).engine, start, end, bucket)


@router.get("/v1/dashboard/latest", responses=ERRORS, summary="Newest predictions")
async def dashboard_latest(
    request: Request, who: Viewer,
    since: Annotated[int, Query(ge=0, le=MAX_CURSOR)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    rows, cursor = await anyio.to_thread.run_sync(analytics.latest, service_of(request).engine, since, limit)
    return {"rows": [r.model_dump(mode="json") for r in rows], "cursor": cursor}


@router.get("/v1/dashboard/unusual", responses=ERRORS, summary="Rare actions and spikes per camera")
async def dashboard_unusual(
    request: Request, who: Viewer,
    recent_minutes: Annotated[float, Query(gt=0, le=24 * 60)] = 15,
    baseline_hours: Annotated[float, Query(gt=0, le=24 * 366)] = 168,
) -> dict[str, Any]:
    rules = analytics.UnusualRules(recent=timedelta(minutes=recent_minutes), baseline=timedelta(hours=baseline_hours))
    items = await anyio.to_thread.run_sync(lambda: analytics.unusual(service_of(request).engine, rules=rules))
    return {"items": items, "recent_minutes": recent_minutes, "baseline_hours": baseline_hours}


@router.get("/", include_in_schema=False)
async def dashboard_page() -> FileResponse:
    return FileResponse(
        STATIC / "index.html",
        headers={
            # Everything the page needs is served from here: no CDN, works offline.
            "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'",
            "Cache-Control": "no-cache",
        },
    )
