"""Who is calling: bearer tokens to a :class:`Principal`, and the FastAPI dependencies the routes declare.

Three kinds of caller: an edge device (its own key, stored as a SHA-256 in the database), the admin and the
dashboard viewer (one token each, from the environment, compared in constant time). A dependency checks the
headers only, so an unauthenticated request is refused before its body is read.
"""

from __future__ import annotations

import hmac
import time
from dataclasses import dataclass
from typing import Literal

import anyio
from fastapi import Request
from sqlalchemy import Engine

from tinyact.cloud.config import ADMIN_TOKEN_ENV
from tinyact.cloud.devices import DeviceInfo, find_device_by_key, hash_key
from tinyact.cloud.errors import APIError

Role = Literal["device", "admin", "viewer"]
_CHALLENGE = {"WWW-Authenticate": "Bearer"}


@dataclass(frozen=True)
class Principal:
    """Who is calling: a device (``device`` set), the admin, or a dashboard viewer."""

    role: Role
    device: DeviceInfo | None = None


class Authenticator:
    """Checks bearer tokens. Device keys are looked up in the database on every request unless ``cache_s`` > 0
    (off by default: a rotated or revoked key must stop working at once on every replica)."""

    def __init__(self, engine: Engine, *, admin_token: str | None, viewer_token: str | None, cache_s: float = 0.0) -> None:
        self.engine = engine
        self.admin_token = admin_token
        self.viewer_token = viewer_token
        self.cache_s = cache_s
        self._cache: dict[str, tuple[DeviceInfo, float]] = {}

    def forget_keys(self) -> None:
        """Drop cached device keys (after a revocation or rotation on this replica)."""
        self._cache.clear()

    async def authenticate(self, token: str | None) -> Principal:
        """The caller behind a bearer token.

        Raises:
            APIError: 401 for a missing, unknown or revoked key.
        """
        if not token:
            raise APIError(401, "unauthorized", "missing credentials: send `Authorization: Bearer <device key or token>`",
                           headers=_CHALLENGE)
        if _matches(token, self.admin_token):
            return Principal("admin")
        if _matches(token, self.viewer_token):
            return Principal("viewer")
        device = await self._device_of(token)
        if device.revoked_at is not None:
            raise APIError(401, "revoked", f"the key of device {device.name!r} was revoked; ask the operator for a new one",
                           headers=_CHALLENGE)
        return Principal("device", device)

    async def _device_of(self, key: str) -> DeviceInfo:
        digest = hash_key(key)
        cached = self._cache.get(digest)
        if cached is not None and cached[1] > time.monotonic():
            return cached[0]
        device = await anyio.to_thread.run_sync(find_device_by_key, self.engine, key)
        if device is None:
            raise APIError(401, "unauthorized", "unknown key: register the device with `tinyact cloud device add`",
                           headers=_CHALLENGE)
        if self.cache_s > 0:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[digest] = (device, time.monotonic() + self.cache_s)
        return device


def _matches(token: str, expected: str | None) -> bool:
    return expected is not None and hmac.compare_digest(token.encode(), expected.encode())


def bearer(request: Request) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or ``None``."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def authenticator_of(request: Request) -> Authenticator:
    """The :class:`Authenticator` of the service serving ``request``."""
    auth: Authenticator = request.app.state.service.auth
    return auth


# ---- dependencies -----------------------------------------------------------------------------------------
async def principal(request: Request) -> Principal:
    """Any caller with a valid token or key."""
    return await authenticator_of(request).authenticate(bearer(request))


async def current_device(request: Request) -> DeviceInfo:
    """The calling device; 403 for the admin and viewer tokens."""
    who = await principal(request)
    if who.device is None:
        raise APIError(403, "forbidden", "this endpoint takes a device key (admin and viewer tokens cannot post clips)")
    return who.device


async def admin_principal(request: Request) -> Principal:
    """The admin, checked from the headers alone (before any request body is read)."""
    if authenticator_of(request).admin_token is None:
        raise APIError(401, "admin_disabled", f"admin API is off: start the service with {ADMIN_TOKEN_ENV} set",
                       headers=_CHALLENGE)
    try:
        who = await principal(request)
    except APIError as error:
        if error.status != 401:
            raise
        raise APIError(401, "unauthorized",
                       f"wrong admin token: send the token the service was started with ({ADMIN_TOKEN_ENV}) "
                       "as `Authorization: Bearer <token>`", headers=_CHALLENGE) from None
    if who.role != "admin":
        raise APIError(403, "forbidden", "this endpoint needs the admin token")
    return who


async def viewer_principal(request: Request) -> Principal:
    """The admin or a dashboard viewer."""
    who = await principal(request)
    if who.role not in {"admin", "viewer"}:
        raise APIError(403, "forbidden", "the dashboard needs the admin or viewer token, not a device key")
    return who
