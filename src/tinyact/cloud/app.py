"""The HTTP API (FastAPI). ``create_app(config)`` builds it; ``/docs`` shows the OpenAPI description.

=========================  =================  ===============================================================
route                      who                what
=========================  =================  ===============================================================
POST /v1/clips             device key         classify and store clips; results in the response
GET  /v1/results           device key, admin  a device's results after a cursor (what it missed)
GET  /v1/model             any token          the active classifier (labels, latent size, encoder hash)
POST /v1/admin/model       admin              load another classifier folder, no downtime
GET  /v1/admin/models      admin              every model version the service has loaded
GET/POST /v1/admin/devices admin              list / add devices; DELETE …/{name} revokes; POST …/{name}/rotate
GET  /v1/export            admin              stream predictions as CSV, JSONL or Parquet
GET  /v1/dashboard/*       viewer, admin      the dashboard's data (summary, timeline, latest, unusual)
GET  /                     anyone             the dashboard page (its data needs a token)
GET  /healthz /readyz      anyone             alive / ready (database answers, a model is loaded)
GET  /metrics              anyone             Prometheus metrics (expose on an internal network only)
=========================  =================  ===============================================================

Every 4xx/5xx body is a :class:`tinyact.wire.ErrorOut` ``{"error": code, "detail": sentence}``.
"""

from __future__ import annotations

import hashlib
import logging
import time
import traceback
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Literal, TypeVar

import anyio
from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field, ValidationError
from pydantic_core import to_json
from sqlalchemy import select
from starlette.exceptions import HTTPException as StarletteHTTPException

from tinyact.classifiers.saved import ClassifierMismatchError
from tinyact.cloud import analytics
from tinyact.cloud.config import ADMIN_TOKEN_ENV, VIEWER_TOKEN_ENV, CloudConfig, env_token, resolve_db_url
from tinyact.cloud.db.engine import make_engine
from tinyact.cloud.db.schema import model_versions
from tinyact.cloud.devices import DeviceError, add_device, list_devices, revoke_device, rotate_device
from tinyact.cloud.export import MEDIA_TYPES, export_stream
from tinyact.cloud.service import APIError, CloudService, Principal, describe_validation_error, stored_to_dict
from tinyact.cloud.store import (
    IDEMPOTENCY_PENDING,
    finish_idempotency_key,
    release_idempotency_key,
    reserve_idempotency_key,
    results_since,
)
from tinyact.errors import TinyActError
from tinyact.wire import ClipsIn, ClipsOut, ErrorOut, ModelInfo, ResultsPage

logger = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
MAX_CURSOR = 2**63 - 1  # ids are BIGINT: a larger cursor cannot exist (and overflows the database driver)
ERRORS = {code: {"model": ErrorOut} for code in (401, 403, 409, 413, 415, 422, 429, 503)}


# ---- plumbing ---------------------------------------------------------------------------------------------
class BodyTooLarge(Exception):
    pass


class _Guard:
    """Pure ASGI middleware: refuses bodies over the limit (413) and records request metrics."""

    def __init__(self, app, service: CloudService) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.service.config.max_body_bytes
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    too_big = int(value) > limit
                except ValueError:
                    too_big = False
                if too_big:
                    self.service.metrics.rejects.labels("body_too_large").inc()
                    await _send_error(send, _too_large(limit))
                    self._observe(scope, 413, 0.0)
                    return
        received = 0

        async def limited_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge()
            return message

        status = 500
        start = time.perf_counter()

        async def send_wrapper(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, limited_receive, send_wrapper)
        finally:
            self._observe(scope, status, time.perf_counter() - start)

    def _observe(self, scope, status: int, seconds: float) -> None:
        route = scope.get("route")
        path = getattr(route, "path", None) or ("static" if scope["path"].startswith("/static/") else "unmatched")
        metrics = self.service.metrics
        metrics.requests.labels(scope["method"], path, str(status)).inc()
        if seconds:
            metrics.latency.labels(path).observe(seconds)


def _gunzip(raw: bytes, limit: int) -> bytes:
    """A gzip request body (the edge compresses when it saves bytes), inflated to at most ``limit`` bytes so
    a small body cannot expand into a huge one."""
    import zlib

    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        body = inflater.decompress(raw, limit + 1)
    except zlib.error:
        raise APIError(422, "invalid_request", "Content-Encoding gzip, but the body is not valid gzip") from None
    if len(body) > limit or inflater.unconsumed_tail:
        raise _too_large(limit)
    return body


def _too_large(limit: int) -> APIError:
    return APIError(413, "body_too_large", f"request body is over {limit} bytes: send fewer clips per request")


async def _send_error(send, error: APIError) -> None:
    response = JSONResponse(error.body(), status_code=error.status, headers=error.headers)
    await response({"type": "http"}, None, send)


def _error_response(error: APIError) -> JSONResponse:
    return JSONResponse(error.body(), status_code=error.status, headers=error.headers)


def service_of(request: Request) -> CloudService:
    return request.app.state.service


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


async def principal(request: Request) -> Principal:
    return await service_of(request).authenticate(_bearer(request))


async def device_principal(request: Request) -> Principal:
    who = await principal(request)
    if who.role != "device":
        raise APIError(403, "forbidden", "this endpoint takes a device key (admin and viewer tokens cannot post clips)")
    return who


async def admin_principal(request: Request) -> Principal:
    """The admin, checked from the headers alone (before any request body is read)."""
    service = service_of(request)
    if service.admin_token is None:
        raise APIError(401, "admin_disabled", f"admin API is off: start the service with {ADMIN_TOKEN_ENV} set",
                       headers={"WWW-Authenticate": "Bearer"})
    try:
        who = await principal(request)
    except APIError as error:
        if error.status != 401:
            raise
        raise APIError(401, "unauthorized",
                       f"wrong admin token: send the token the service was started with ({ADMIN_TOKEN_ENV}) "
                       "as `Authorization: Bearer <token>`", headers={"WWW-Authenticate": "Bearer"}) from None
    if who.role != "admin":
        raise APIError(403, "forbidden", "this endpoint needs the admin token")
    return who


async def viewer_principal(request: Request) -> Principal:
    who = await principal(request)
    if who.role not in {"admin", "viewer"}:
        raise APIError(403, "forbidden", "the dashboard needs the admin or viewer token, not a device key")
    return who


# ---- models of the admin API ------------------------------------------------------------------------------
class ModelSwapIn(BaseModel):
    path: str = Field(description="folder written by `tinyact classify fit`, as seen by the server")
    allow_encoder_change: bool = Field(
        False, description="accept a classifier of another encoder or latent size (devices must switch encoders too)"
    )


class DeviceIn(BaseModel):
    name: str = Field(description="device name: letters, digits, _ . : - (max 64)")


class DeviceOut(BaseModel):
    name: str
    key_hint: str
    created_at: datetime
    revoked_at: datetime | None
    active: bool


class NewDeviceOut(BaseModel):
    name: str
    key: str = Field(description="the device key, shown only now; store it on the device")


class HealthOut(BaseModel):
    status: str
    model: str | None = None
    database: str | None = None


# ---- routes -----------------------------------------------------------------------------------------------
router = APIRouter()


@router.post(
    "/v1/clips",
    response_model=ClipsOut,
    responses=ERRORS,
    tags=["clips"],
    summary="Classify and store clips",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ClipsIn"}}},
        },
        "parameters": [
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "schema": {"type": "string", "maxLength": 200},
                "description": "Repeat a request with the same key and body to get the first answer back.",
            }
        ],
    },
)
async def post_clips(request: Request, who: Annotated[Principal, Depends(device_principal)]) -> Response:
    """Classify up to `max_clips_per_request` latents of the calling device and store them.

    A clip id the device sent before is answered from the database and stored only once. The whole request
    is checked before anything is stored: one bad clip gets a 422 naming it, and nothing is written.
    """
    service = service_of(request)
    device = who.device
    service.check_rate(device)
    content_type = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if content_type not in {"application/json", ""}:
        raise APIError(415, "unsupported_media_type", "send the clips as JSON (Content-Type: application/json)")
    raw = await request.body()
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding == "gzip":
        raw = _gunzip(raw, service.config.max_body_bytes)
    elif encoding not in {"identity", ""}:
        raise APIError(415, "unsupported_media_type", f"Content-Encoding {encoding!r}: send identity or gzip")
    key = request.headers.get("idempotency-key")
    if key is None:
        return Response(await _classify_body(service, device, raw), media_type="application/json")
    if not 1 <= len(key) <= 200 or not key.isprintable():
        raise APIError(400, "bad_idempotency_key", "Idempotency-Key must be 1-200 printable characters")
    request_hash = hashlib.sha256(raw).hexdigest()
    # Claim the key before classifying: a concurrent request with the same key (and maybe another body)
    # then gets the first one's answer, 409 while it runs, or 422, and nothing of it is stored.
    found = await anyio.to_thread.run_sync(reserve_idempotency_key, service.engine, device.id, key, request_hash)
    if found is not None:
        return _replay(found, request_hash)
    try:
        payload = await _classify_body(service, device, raw)
    except BaseException:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(release_idempotency_key, service.engine, device.id, key, request_hash)
        raise
    await anyio.to_thread.run_sync(finish_idempotency_key, service.engine, device.id, key, {"body": payload})
    return Response(payload, media_type="application/json")


async def _classify_body(service: CloudService, device, raw: bytes) -> str:
    """The ClipsOut JSON for a raw ClipsIn body (built without pydantic models on the way out)."""
    try:
        body = ClipsIn.model_validate_json(raw)
    except ValidationError as error:
        raise describe_validation_error(error) from None
    if len(body.clips) > service.config.max_clips_per_request:
        raise APIError(422, "too_many_clips",
                       f"{len(body.clips)} clips in one request; the limit is {service.config.max_clips_per_request}: split the batch")
    results, _ = await service.process_clips(device, body.clips)
    return to_json({"results": results}).decode()


def _replay(found: tuple[str, dict], request_hash: str) -> Response:
    stored_hash, response = found
    if stored_hash != request_hash:
        raise APIError(422, "idempotency_key_reused",
                       "this Idempotency-Key was used with a different body: use a new key for a new request")
    if response == IDEMPOTENCY_PENDING:
        raise APIError(409, "idempotency_key_in_use",
                       "a request with this Idempotency-Key is still being processed; retry in a moment",
                       headers={"Retry-After": "1"})
    return Response(response["body"], media_type="application/json", headers={"Idempotent-Replayed": "true"})


@router.get("/v1/results", response_model=ResultsPage, responses=ERRORS, tags=["clips"], summary="Results after a cursor")
async def get_results(
    request: Request,
    who: Annotated[Principal, Depends(principal)],
    since: Annotated[int, Query(ge=0, le=MAX_CURSOR, description="the `next_cursor` of the previous page (0: from the start)")] = 0,
    limit: Annotated[int, Query(ge=1, le=100_000, description="results per page (capped by the server)")] = 100,
    device: Annotated[str | None, Query(description="whose results (default: the calling device; admin: required)")] = None,
) -> Response:
    """A device's stored results with cursor > `since`, oldest first. Devices read only their own."""
    service = service_of(request)
    if who.role == "device":
        if device is not None and device != who.device.name:
            raise APIError(403, "forbidden", f"device {who.device.name!r} cannot read the results of {device!r}")
        target = who.device
    elif who.role == "admin":
        if device is None:
            raise APIError(422, "invalid_request", "device: give ?device=NAME (the admin token reads any device's results)")
        from tinyact.cloud.devices import find_device_by_name

        target = await anyio.to_thread.run_sync(find_device_by_name, service.engine, device)
        if target is None:
            raise APIError(404, "not_found", f"no device named {device!r}")
    else:
        raise APIError(403, "forbidden", "results are read with a device key or the admin token")
    limit = min(limit, service.config.results_page_max)
    rows = await anyio.to_thread.run_sync(results_since, service.engine, target.id, since, limit)
    page = {"results": [stored_to_dict(r) for r in rows], "next_cursor": rows[-1].id if rows else since}
    return Response(to_json(page), media_type="application/json")  # a ResultsPage


def _model_info(service: CloudService) -> ModelInfo:
    model = service.registry.current
    if model is None:
        raise APIError(503, "no_model", "no classifier is loaded yet", headers={"Retry-After": "5"})
    c = model.classifier
    return ModelInfo(version=c.version, kind=c.kind, latent_dim=c.latent_dim, encoder_hash=c.encoder_hash, labels=c.label_names)


@router.get("/v1/model", response_model=ModelInfo, responses=ERRORS, tags=["clips"], summary="The active classifier")
async def get_model(request: Request, who: Annotated[Principal, Depends(principal)]) -> ModelInfo:
    """What the service classifies with: check `latent_dim` and `encoder_hash` against the device's encoder."""
    return _model_info(service_of(request))


_Body = TypeVar("_Body", bound=BaseModel)


def _body_doc(model: type[BaseModel]) -> dict:
    """OpenAPI of a JSON body that a route reads itself (after authentication), see ``openapi()`` below."""
    return {"requestBody": {"required": True, "content": {"application/json": {
        "schema": {"$ref": f"#/components/schemas/{model.__name__}"}}}}}


async def _json_body(request: Request, model: type[_Body]) -> _Body:
    """The request body as ``model``; routes call this after their auth dependency, so an unauthenticated
    request is refused before its body is read."""
    try:
        return model.model_validate_json(await request.body())
    except ValidationError as error:
        raise describe_validation_error(error) from None


@router.post("/v1/admin/model", response_model=ModelInfo, responses=ERRORS, tags=["admin"], summary="Swap the classifier",
             openapi_extra=_body_doc(ModelSwapIn))
async def swap_model(request: Request, who: Annotated[Principal, Depends(admin_principal)]) -> ModelInfo:
    """Load a classifier folder and make it active, here at once and on other replicas within `model_poll_s`.

    The old model answers until the new one is loaded and warmed up. A classifier of another encoder or latent
    size is refused (409) unless `allow_encoder_change` is set.
    """
    service = service_of(request)
    body = await _json_body(request, ModelSwapIn)
    try:
        await anyio.to_thread.run_sync(lambda: service.swap_model(body.path, allow_encoder_change=body.allow_encoder_change))
    except ClassifierMismatchError as error:
        raise APIError(409, "model_mismatch", str(error)) from None
    except TinyActError as error:
        raise APIError(422, "bad_model", str(error)) from None
    return _model_info(service)


@router.get("/v1/admin/models", tags=["admin"], responses=ERRORS, summary="Model versions seen")
async def list_models(request: Request, who: Annotated[Principal, Depends(admin_principal)]) -> list[dict]:
    service = service_of(request)

    def query() -> list[dict]:
        with service.engine.connect() as connection:
            rows = connection.execute(select(model_versions).order_by(model_versions.c.id)).mappings().all()
        active = service.registry.current.version if service.registry.current else None
        return [
            {
                "version": r["version"], "kind": r["kind"], "path": r["path"], "latent_dim": r["latent_dim"],
                "encoder_hash": r["encoder_hash"], "labels": r["label_names"], "metrics": r["metrics"],
                "first_loaded_at": r["first_loaded_at"].isoformat(),
                "activated_at": r["activated_at"].isoformat() if r["activated_at"] else None,
                "active_here": r["version"] == active,
            }
            for r in rows
        ]

    return await anyio.to_thread.run_sync(query)


@router.get("/v1/admin/devices", response_model=list[DeviceOut], responses=ERRORS, tags=["admin"], summary="List devices")
async def admin_list_devices(request: Request, who: Annotated[Principal, Depends(admin_principal)]) -> list[DeviceOut]:
    rows = await anyio.to_thread.run_sync(list_devices, service_of(request).engine)
    return [DeviceOut(name=d.name, key_hint=d.key_hint, created_at=d.created_at, revoked_at=d.revoked_at, active=d.active) for d in rows]


@router.post("/v1/admin/devices", response_model=NewDeviceOut, status_code=201, responses=ERRORS, tags=["admin"],
             summary="Add a device", openapi_extra=_body_doc(DeviceIn))
async def admin_add_device(request: Request, who: Annotated[Principal, Depends(admin_principal)]) -> NewDeviceOut:
    """Register a device; the answer holds its key, which is not stored and cannot be shown again."""
    body = await _json_body(request, DeviceIn)
    try:
        new = await anyio.to_thread.run_sync(add_device, service_of(request).engine, body.name)
    except DeviceError as error:
        status = 409 if "already exists" in str(error) else 422
        raise APIError(status, "bad_device", str(error)) from None
    return NewDeviceOut(name=new.name, key=new.key)


@router.delete("/v1/admin/devices/{name}", response_model=DeviceOut, responses=ERRORS, tags=["admin"], summary="Revoke a device")
async def admin_revoke_device(request: Request, name: str, who: Annotated[Principal, Depends(admin_principal)]) -> DeviceOut:
    service = service_of(request)
    try:
        d = await anyio.to_thread.run_sync(revoke_device, service.engine, name)
    except DeviceError as error:
        raise APIError(404, "not_found", str(error)) from None
    service._auth_cache.clear()  # this replica stops accepting the key at once; others within auth_cache_s
    return DeviceOut(name=d.name, key_hint=d.key_hint, created_at=d.created_at, revoked_at=d.revoked_at, active=d.active)


@router.post("/v1/admin/devices/{name}/rotate", response_model=NewDeviceOut, responses=ERRORS, tags=["admin"],
             summary="Give a device a new key")
async def admin_rotate_device(request: Request, name: str, who: Annotated[Principal, Depends(admin_principal)]) -> NewDeviceOut:
    """Replace a device's key; the old key gets 401 at once on every replica (keys are checked in the database)."""
    service = service_of(request)
    try:
        new = await anyio.to_thread.run_sync(rotate_device, service.engine, name)
    except DeviceError as error:
        raise APIError(404 if "no device" in str(error) else 409, "bad_device", str(error)) from None
    service._auth_cache.clear()
    return NewDeviceOut(name=new.name, key=new.key)


def _parse_time(value: str | None, name: str) -> datetime | None:
    try:
        return analytics.parse_time(value)
    except ValueError as error:
        raise APIError(422, "invalid_request", f"{name}: {error}") from None


@router.get(
    "/v1/export",
    responses={**ERRORS, 200: {"content": {t: {} for t in MEDIA_TYPES.values()}, "description": "the export file"}},
    tags=["admin"],
    summary="Export predictions",
)
async def export(
    request: Request,
    who: Annotated[Principal, Depends(admin_principal)],
    format: Annotated[Literal["csv", "jsonl", "parquet"], Query(description="file format")] = "csv",
    start: Annotated[str | None, Query(alias="from", description="captured at or after (ISO 8601; UTC if no zone)")] = None,
    end: Annotated[str | None, Query(alias="to", description="captured before (ISO 8601)")] = None,
    camera: Annotated[str | None, Query(description="camera name, or DEVICE/CAMERA")] = None,
    label: Annotated[str | None, Query(description="predicted label")] = None,
    device: Annotated[str | None, Query(description="device name")] = None,
) -> StreamingResponse:
    """Stream matching predictions (no whole-table load): CSV, JSON Lines or Parquet."""
    row_filter = analytics.RowFilter(_parse_time(start, "from"), _parse_time(end, "to"), camera, label, device)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return StreamingResponse(
        export_stream(service_of(request).engine, format, row_filter),
        media_type=MEDIA_TYPES[format],
        headers={"Content-Disposition": f'attachment; filename="tinyact-predictions-{stamp}.{format}"'},
    )


# ---- dashboard data ---------------------------------------------------------------------------------------
def _row_json(p) -> dict:
    return {
        "id": p.id, "device": p.device, "camera": p.camera, "clip_id": str(p.clip_id),
        "captured_at": p.captured_at.isoformat(), "received_at": p.received_at.isoformat(),
        "label": p.label, "score": p.score, "top5": p.top5, "model_version": p.model_version,
    }


@router.get("/v1/dashboard/summary", tags=["dashboard"], responses=ERRORS, summary="Counts and last action per camera")
async def dashboard_summary(
    request: Request, who: Annotated[Principal, Depends(viewer_principal)],
    hours: Annotated[float, Query(gt=0, le=24 * 366)] = 24,
) -> dict:
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


@router.get("/v1/dashboard/timeline", tags=["dashboard"], responses=ERRORS, summary="Clips per label over time")
async def dashboard_timeline(
    request: Request, who: Annotated[Principal, Depends(viewer_principal)],
    hours: Annotated[float, Query(gt=0, le=24 * 366)] = 24,
    buckets: Annotated[int, Query(ge=2, le=500)] = 60,
) -> dict:
    end = datetime.now(UTC)
    start = end - timedelta(hours=hours)
    bucket = analytics.nice_bucket(hours * 3600, buckets)
    return await anyio.to_thread.run_sync(analytics.timeline, service_of(request).engine, start, end, bucket)


@router.get("/v1/dashboard/latest", tags=["dashboard"], responses=ERRORS, summary="Newest predictions")
async def dashboard_latest(
    request: Request, who: Annotated[Principal, Depends(viewer_principal)],
    since: Annotated[int, Query(ge=0, le=MAX_CURSOR)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict:
    rows, cursor = await anyio.to_thread.run_sync(analytics.latest, service_of(request).engine, since, limit)
    return {"rows": [_row_json(r) for r in rows], "cursor": cursor}


@router.get("/v1/dashboard/unusual", tags=["dashboard"], responses=ERRORS, summary="Rare actions and spikes per camera")
async def dashboard_unusual(
    request: Request, who: Annotated[Principal, Depends(viewer_principal)],
    recent_minutes: Annotated[float, Query(gt=0, le=24 * 60)] = 15,
    baseline_hours: Annotated[float, Query(gt=0, le=24 * 366)] = 168,
) -> dict:
    rules = analytics.UnusualRules(recent=timedelta(minutes=recent_minutes), baseline=timedelta(hours=baseline_hours))
    items = await anyio.to_thread.run_sync(lambda: analytics.unusual(service_of(request).engine, rules=rules))
    return {"items": items, "recent_minutes": recent_minutes, "baseline_hours": baseline_hours}


# ---- health -----------------------------------------------------------------------------------------------
@router.get("/healthz", response_model=HealthOut, tags=["health"], summary="Alive")
async def healthz() -> HealthOut:
    return HealthOut(status="ok")


@router.get("/readyz", response_model=HealthOut, responses={503: {"model": HealthOut}}, tags=["health"], summary="Ready")
async def readyz(request: Request) -> Response:
    """200 when the database answers and a model is loaded, else 503 saying which is missing."""
    service = service_of(request)
    database = await anyio.to_thread.run_sync(service.database_ok)
    model = service.registry.current
    ready = database and model is not None
    body = HealthOut(status="ready" if ready else "not ready", model=model.version if model else None,
                     database="ok" if database else "unreachable")
    return JSONResponse(body.model_dump(), status_code=200 if ready else 503)


@router.get("/metrics", tags=["health"], summary="Prometheus metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    data, content_type = service_of(request).metrics.exposition()
    return Response(data, media_type=content_type)


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


# ---- the app ----------------------------------------------------------------------------------------------
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
    async def lifespan(app: FastAPI):
        await service.start()
        try:
            yield
        finally:
            await service.stop()

    app = FastAPI(
        title="TinyAct cloud",
        version="1",
        summary="Classifies 1024-d clip latents sent by edge devices; stores, sends back, exports and shows results.",
        lifespan=lifespan,
    )
    app.state.service = service
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_middleware(_Guard, service=service)

    @app.exception_handler(APIError)
    async def _api_error(request: Request, error: APIError) -> JSONResponse:
        if error.status < 500 and error.code != "rate_limited":
            service.metrics.rejects.labels(error.code).inc()
        return _error_response(error)

    @app.exception_handler(BodyTooLarge)
    async def _body_too_large(request: Request, error: BodyTooLarge) -> JSONResponse:
        service.metrics.rejects.labels("body_too_large").inc()
        return _error_response(_too_large(service.config.max_body_bytes))

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

    def openapi() -> dict:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, summary=app.summary, routes=app.routes)
            # POST /v1/clips reads its body itself (authentication first, one fast JSON parse), so its schema
            # is added here by hand.
            body = ClipsIn.model_json_schema(ref_template="#/components/schemas/{model}")
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            components.update(body.pop("$defs", {}))
            components["ClipsIn"] = body
            for model in (ModelSwapIn, DeviceIn):  # admin bodies, read after authentication
                components[model.__name__] = model.model_json_schema(ref_template="#/components/schemas/{model}")
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi
    return app


def app_from_env() -> FastAPI:
    """uvicorn factory for ``--workers N``: the config comes as JSON in ``$TINYACT_CLOUD_CONFIG``."""
    import os

    return create_app(CloudConfig.model_validate_json(os.environ["TINYACT_CLOUD_CONFIG"]))
