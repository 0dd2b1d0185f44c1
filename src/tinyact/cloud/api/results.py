"""What a device reads back: its results after a cursor (``GET /v1/results``, what it missed while offline)
and the active classifier (``GET /v1/model``, to check its encoder against)."""

from __future__ import annotations

from typing import Annotated

import anyio
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic_core import to_json

from tinyact.cloud.api.deps import ERRORS, MAX_CURSOR, service_of
from tinyact.cloud.auth import Principal, principal
from tinyact.cloud.devices import DeviceInfo, find_device_by_name
from tinyact.cloud.errors import APIError
from tinyact.cloud.service import CloudService
from tinyact.cloud.store import results_since
from tinyact.wire import ModelInfo, ResultsPage

router = APIRouter(tags=["clips"])


@router.get("/v1/results", response_model=ResultsPage, responses=ERRORS, summary="Results after a cursor")
async def get_results(
    request: Request,
    who: Annotated[Principal, Depends(principal)],
    since: Annotated[int, Query(ge=0, le=MAX_CURSOR, description="the `next_cursor` of the previous page (0: from the start)")] = 0,
    limit: Annotated[int, Query(ge=1, le=100_000, description="results per page (capped by the server)")] = 100,
    device: Annotated[str | None, Query(description="whose results (default: the calling device; admin: required)")] = None,
) -> Response:
    """A device's stored results with cursor > `since`, oldest first. Devices read only their own."""
    service = service_of(request)
    target = await _whose_results(service, who, device)
    limit = min(limit, service.config.results_page_max)
    rows = await anyio.to_thread.run_sync(results_since, service.engine, target.id, since, limit)
    page = {"results": [r.result() for r in rows], "next_cursor": rows[-1].id if rows else since}
    return Response(to_json(page), media_type="application/json")  # a ResultsPage


async def _whose_results(service: CloudService, who: Principal, device: str | None) -> DeviceInfo:
    """The device whose results ``who`` may read: its own (a device), the named one (the admin).

    Raises:
        APIError: 403 for another device's results or a viewer, 422 for an admin without ``device``, 404 for
            an unknown device.
    """
    if who.device is not None:
        if device is not None and device != who.device.name:
            raise APIError(403, "forbidden", f"device {who.device.name!r} cannot read the results of {device!r}")
        return who.device
    if who.role != "admin":
        raise APIError(403, "forbidden", "results are read with a device key or the admin token")
    if device is None:
        raise APIError(422, "invalid_request", "device: give ?device=NAME (the admin token reads any device's results)")
    target = await anyio.to_thread.run_sync(find_device_by_name, service.engine, device)
    if target is None:
        raise APIError(404, "not_found", f"no device named {device!r}")
    return target


def model_info(service: CloudService) -> ModelInfo:
    """The active classifier as :class:`ModelInfo`; 503 while none is loaded."""
    model = service.registry.current
    if model is None:
        raise APIError(503, "no_model", "no classifier is loaded yet", headers={"Retry-After": "5"})
    c = model.classifier
    return ModelInfo(version=c.version, kind=c.kind, latent_dim=c.latent_dim, encoder_hash=c.encoder_hash, labels=c.label_names)


@router.get("/v1/model", response_model=ModelInfo, responses=ERRORS, summary="The active classifier")
async def get_model(request: Request, who: Annotated[Principal, Depends(principal)]) -> ModelInfo:
    """What the service classifies with: check `latent_dim` and `encoder_hash` against the device's encoder."""
    return model_info(service_of(request))
