"""The admin API (admin token only): swap the classifier, list the model versions, manage device keys, and
export predictions. Bodies are read after authentication (:func:`~tinyact.cloud.api.deps.json_body`), so
their schemas are listed in :data:`BODIES` for the OpenAPI description."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import anyio
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field
from sqlalchemy import select

from tinyact.classifiers.saved import ClassifierMismatchError
from tinyact.cloud.analytics import RowFilter, parse_time
from tinyact.cloud.api.deps import ERRORS, body_doc, json_body, service_of
from tinyact.cloud.api.results import model_info
from tinyact.cloud.auth import Principal, admin_principal
from tinyact.cloud.db.schema import model_versions
from tinyact.cloud.devices import (
    DeviceError,
    DeviceInfo,
    add_device,
    list_devices,
    revoke_device,
    rotate_device,
)
from tinyact.cloud.errors import APIError
from tinyact.cloud.export import MEDIA_TYPES, export_stream
from tinyact.errors import TinyActError
from tinyact.wire import ModelInfo

router = APIRouter(tags=["admin"])
Admin = Annotated[Principal, Depends(admin_principal)]


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

    @classmethod
    def of(cls, device: DeviceInfo) -> DeviceOut:
        return cls(name=device.name, key_hint=device.key_hint, created_at=device.created_at,
                   revoked_at=device.revoked_at, active=device.active)


class NewDeviceOut(BaseModel):
    name: str
    key: str = Field(description="the device key, shown only now; store it on the device")


BODIES: tuple[type[BaseModel], ...] = (ModelSwapIn, DeviceIn)
"""Request bodies read after authentication: their schemas are added to the OpenAPI components by hand."""


@router.post("/v1/admin/model", response_model=ModelInfo, responses=ERRORS, summary="Swap the classifier",
             openapi_extra=body_doc(ModelSwapIn))
async def swap_model(request: Request, who: Admin) -> ModelInfo:
    """Load a classifier folder and make it active, here at once and on other replicas within `model_poll_s`.

    The old model answers until the new one is loaded and warmed up. A classifier of another encoder or latent
    size is refused (409) unless `allow_encoder_change` is set.
    """
    service = service_of(request)
    body = await json_body(request, ModelSwapIn)
    try:
        await anyio.to_thread.run_sync(lambda: service.swap_model(body.path, allow_encoder_change=body.allow_encoder_change))
    except ClassifierMismatchError as error:
        raise APIError(409, "model_mismatch", str(error)) from None
    except TinyActError as error:
        raise APIError(422, "bad_model", str(error)) from None
    return model_info(service)


@router.get("/v1/admin/models", responses=ERRORS, summary="Model versions seen")
async def list_models(request: Request, who: Admin) -> list[dict[str, Any]]:
    service = service_of(request)

    def query() -> list[dict[str, Any]]:
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


@router.get("/v1/admin/devices", response_model=list[DeviceOut], responses=ERRORS, summary="List devices")
async def admin_list_devices(request: Request, who: Admin) -> list[DeviceOut]:
    rows = await anyio.to_thread.run_sync(list_devices, service_of(request).engine)
    return [DeviceOut.of(d) for d in rows]


@router.post("/v1/admin/devices", response_model=NewDeviceOut, status_code=201, responses=ERRORS,
             summary="Add a device", openapi_extra=body_doc(DeviceIn))
async def admin_add_device(request: Request, who: Admin) -> NewDeviceOut:
    """Register a device; the answer holds its key, which is not stored and cannot be shown again."""
    body = await json_body(request, DeviceIn)
    try:
        new = await anyio.to_thread.run_sync(add_device, service_of(request).engine, body.name)
    except DeviceError as error:
        status = 409 if "already exists" in str(error) else 422
        raise APIError(status, "bad_device", str(error)) from None
    return NewDeviceOut(name=new.name, key=new.key)


@router.delete("/v1/admin/devices/{name}", response_model=DeviceOut, responses=ERRORS, summary="Revoke a device")
async def admin_revoke_device(request: Request, name: str, who: Admin) -> DeviceOut:
    service = service_of(request)
    try:
        device = await anyio.to_thread.run_sync(revoke_device, service.engine, name)
    except DeviceError as error:
        raise APIError(404, "not_found", str(error)) from None
    service.auth.forget_keys()  # this replica stops accepting the key at once; others within auth_cache_s
    return DeviceOut.of(device)


@router.post("/v1/admin/devices/{name}/rotate", response_model=NewDeviceOut, responses=ERRORS,
             summary="Give a device a new key")
async def admin_rotate_device(request: Request, name: str, who: Admin) -> NewDeviceOut:
    """Replace a device's key; the old key gets 401 at once on every replica (keys are checked in the database)."""
    service = service_of(request)
    try:
        new = await anyio.to_thread.run_sync(rotate_device, service.engine, name)
    except DeviceError as error:
        raise APIError(404 if "no device" in str(error) else 409, "bad_device", str(error)) from None
    service.auth.forget_keys()
    return NewDeviceOut(name=new.name, key=new.key)


def _parse_time(value: str | None, name: str) -> datetime | None:
    try:
        return parse_time(value)
    except ValueError as error:
        raise APIError(422, "invalid_request", f"{name}: {error}") from None


@router.get(
    "/v1/export",
    responses={**ERRORS, 200: {"content": {t: {} for t in MEDIA_TYPES.values()}, "description": "the export file"}},
    summary="Export predictions",
)
async def export(
    request: Request,
    who: Admin,
    format: Annotated[Literal["csv", "jsonl", "parquet"], Query(description="file format")] = "csv",
    start: Annotated[str | None, Query(alias="from", description="captured at or after (ISO 8601; UTC if no zone)")] = None,
    end: Annotated[str | None, Query(alias="to", description="captured before (ISO 8601)")] = None,
    camera: Annotated[str | None, Query(description="camera name, or DEVICE/CAMERA")] = None,
    label: Annotated[str | None, Query(description="predicted label")] = None,
    device: Annotated[str | None, Query(description="device name")] = None,
) -> StreamingResponse:
    """Stream matching predictions (no whole-table load): CSV, JSON Lines or Parquet."""
    row_filter = RowFilter(_parse_time(start, "from"), _parse_time(end, "to"), camera, label, device)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return StreamingResponse(
        export_stream(service_of(request).engine, format, row_filter),
        media_type=MEDIA_TYPES[format],
        headers={"Content-Disposition": f'attachment; filename="tinyact-predictions-{stamp}.{format}"'},
    )
