"""``POST /v1/clips``: a device sends latents, the answer holds their results.

The route reads its body itself, after authentication and the rate limit (no work for a caller who is
refused), in one fast JSON parse; gzip bodies are inflated with a size limit. With an ``Idempotency-Key``
header the answer is stored, and a repeat of the request gets it back (see :mod:`tinyact.cloud.idempotency`).
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from pydantic import ValidationError
from pydantic_core import to_json

from tinyact.cloud.api.deps import ERRORS, service_of
from tinyact.cloud.auth import current_device
from tinyact.cloud.devices import DeviceInfo
from tinyact.cloud.errors import APIError, describe_validation_error
from tinyact.cloud.idempotency import (
    IDEMPOTENCY_PENDING,
    finish_idempotency_key,
    release_idempotency_key,
    reserve_idempotency_key,
)
from tinyact.cloud.middleware import gunzip
from tinyact.cloud.service import CloudService
from tinyact.wire import ClipsIn, ClipsOut

router = APIRouter(tags=["clips"])


@router.post(
    "/v1/clips",
    response_model=ClipsOut,
    responses=ERRORS,
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
async def post_clips(request: Request, device: Annotated[DeviceInfo, Depends(current_device)]) -> Response:
    """Classify up to `max_clips_per_request` latents of the calling device and store them.

    A clip id the device sent before is answered from the database and stored only once. The whole request
    is checked before anything is stored: one bad clip gets a 422 naming it, and nothing is written.
    """
    service = service_of(request)
    service.check_rate(device)
    content_type = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if content_type not in {"application/json", ""}:
        raise APIError(415, "unsupported_media_type", "send the clips as JSON (Content-Type: application/json)")
    raw = await request.body()
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding == "gzip":
        raw = gunzip(raw, service.config.max_body_bytes)
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


async def _classify_body(service: CloudService, device: DeviceInfo, raw: bytes) -> str:
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


def _replay(found: tuple[str, dict[str, Any]], request_hash: str) -> Response:
    """The stored answer of an ``Idempotency-Key`` seen before (422 for another body, 409 while it runs)."""
    stored_hash, response = found
    if stored_hash != request_hash:
        raise APIError(422, "idempotency_key_reused",
                       "this Idempotency-Key was used with a different body: use a new key for a new request")
    if response == IDEMPOTENCY_PENDING:
        raise APIError(409, "idempotency_key_in_use",
                       "a request with this Idempotency-Key is still being processed; retry in a moment",
                       headers={"Retry-After": "1"})
    return Response(response["body"], media_type="application/json", headers={"Idempotent-Replayed": "true"})
