"""The edge web page: live camera views, the latest action per camera, the local history and the outbox.

Served by the agent on the LAN address of its config (``web.host``/``web.port``) and protected by a local
token. The browser signs in once (``POST /api/login``, or opening ``/?token=…``) and gets an HTTP-only cookie
holding a signed session (``v1.<issued>.<nonce>.<HMAC-SHA256>`` keyed by the token, valid 30 days; never the
token itself), so ``<img>`` tags of the snapshots are authorised too; scripts may instead send
``Authorization: Bearer …`` or ``X-TinyAct-Token``. API routes do not accept ``?token=`` (a token in a URL ends
up in browser history and logs). Wrong tokens are throttled per client: after ``LOGIN_FAILURES`` failures in a
minute, sign-in attempts get 429 until the minute is over. Everything the page needs is served from here (no
CDN: works offline).

Routes::

    GET  /                          the page (public; its data needs the token)
    POST /api/login {"token": …}    sets the cookie          POST /api/logout   clears it
    GET  /api/status                agent status + camera views + outbox counters (see :func:`camera_rows`) +
                                    ``encoder_mismatch`` (clips held because the cloud expects another encoder)
    GET  /api/history?limit=&camera=  newest captures with their results, from the local database
    GET  /snapshots/{camera}.jpg    latest snapshot (periodically refreshed by the page)
    GET  /stream/{camera}.mjpg      the same as an MJPEG stream (multipart/x-mixed-replace)
    GET  /healthz                   alive (no token)
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import secrets
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel

from tinyact.errors import TinyActError
from tinyact.wire import CAMERA_ID_PATTERN

STATIC = Path(__file__).parent / "static"
COOKIE = "tinyact_edge"
SESSION_MAX_AGE_S = 30 * 86400
LOGIN_FAILURES = 5  # wrong tokens per client and minute before sign-in attempts are refused (429)
LOGIN_WINDOW_S = 60.0
_CAMERA_RE = re.compile(CAMERA_ID_PATTERN)
_PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'",
    "Cache-Control": "no-cache",
}


class EdgeStoreLike(Protocol):
    """What the page reads from :class:`tinyact.edge.store.EdgeStore`."""

    def recent(self, limit: int = 50, camera_id: str | None = None) -> list[dict]: ...

    def latest_per_camera(self) -> dict[str, dict]: ...

    def counts(self) -> dict: ...


class Login(BaseModel):
    token: str


def _iso(value: Any) -> Any:
    """Datetimes as ISO 8601 with a time zone (naive ones are UTC, as the store writes them)."""
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()
    return value


def _agent_cameras(status: dict) -> dict[str, dict]:
    """The agent's cameras as ``{camera_id: info}``, whether it lists them as a dict or a list."""
    cameras = status.get("cameras") or {}
    if isinstance(cameras, dict):
        return {str(k): dict(v) if isinstance(v, dict) else {"up": bool(v)} for k, v in cameras.items()}
    out = {}
    for item in cameras:
        if isinstance(item, dict):
            cid = item.get("camera_id") or item.get("id") or item.get("name")
            if cid is not None:
                out[str(cid)] = dict(item)
    return out


def _is_up(info: dict) -> bool | None:
    if str(info.get("state", "")).lower() in ("starting", "unknown"):
        return None  # not tried yet
    for key in ("up", "online", "connected"):
        if key in info:
            return bool(info[key])
    state = info.get("state") or info.get("status")
    if isinstance(state, str):
        return state.lower() in ("up", "ok", "online", "running", "connected")
    return None


def camera_rows(status: dict, latest: dict[str, dict], snapshot_dir: Path) -> list[dict]:
    """One row per camera known to the agent, the database or the snapshot folder: ``camera_id, up, error,
    label, score, captured_at, snapshot_at`` (epoch seconds of the snapshot file, ``None`` without one)."""
    agent = _agent_cameras(status)
    snapshots = {p.stem: p.stat().st_mtime for p in snapshot_dir.glob("*.jpg")} if snapshot_dir.is_dir() else {}
    rows = []
    for cid in sorted(set(agent) | set(latest) | set(snapshots)):
        info = agent.get(cid, {})
        last = latest.get(cid) or {}
        up = _is_up(info) if info else None
        rows.append({
            "camera_id": cid,
            "up": up,
            "error": (info.get("last_error") or info.get("error")) if up is False else None,  # not a healed one
            "source": info.get("source"),
            "label": last.get("label"),
            "score": last.get("score"),
            "captured_at": _iso(last.get("captured_at")),
            "state": last.get("state"),
            "snapshot_at": snapshots.get(cid),
        })
    return rows


def _scalars(status: dict) -> dict[str, Any]:
    """Scalar fields of the agent status for the page's key/value table: top-level ones (device, rounds,
    overruns, …) and those one level down (``encode.mean_batch_ms``, ``transport.last_error``, …). Cameras
    and counters have their own sections."""
    out: dict[str, Any] = {}
    for key, value in status.items():
        if key in ("cameras", "counts", "encoder_mismatch"):  # their own sections
            continue
        if value is None or isinstance(value, (str, int, float, bool, datetime)):
            out[key] = _iso(value)
        elif isinstance(value, dict):
            for sub, inner in value.items():
                if inner is None or isinstance(inner, (str, int, float, bool, datetime)):
                    out[f"{key}.{sub}"] = _iso(inner)
    return out


class SessionSigner:
    """Cookie values for signed-in browsers: ``v1.<issued epoch s>.<nonce>.<HMAC-SHA256 hex>``, keyed by a key
    derived from the page token, so the cookie never holds the token and a new token ends every session."""

    def __init__(self, token: str, max_age_s: float = SESSION_MAX_AGE_S) -> None:
        self._key = hashlib.sha256(b"tinyact-edge-session\0" + token.encode()).digest()
        self.max_age_s = max_age_s

    def _mac(self, payload: str) -> str:
        return hmac.new(self._key, payload.encode(), hashlib.sha256).hexdigest()

    def issue(self, now: float | None = None) -> str:
        payload = f"v1.{int(now if now is not None else time.time())}.{secrets.token_urlsafe(12)}"
        return f"{payload}.{self._mac(payload)}"

    def valid(self, value: str | None, now: float | None = None) -> bool:
        if not value or value.count(".") != 3:
            return False
        payload, _, mac = value.rpartition(".")
        if not hmac.compare_digest(mac.encode(), self._mac(payload).encode()):
            return False
        try:
            issued = int(payload.split(".")[1])
        except ValueError:
            return False
        age = (now if now is not None else time.time()) - issued
        return 0 <= age <= self.max_age_s


class LoginThrottle:
    """Wrong tokens per client (IP address): after ``limit`` failures within ``window_s`` the client is refused
    until the oldest of them is ``window_s`` old."""

    def __init__(self, limit: int = LOGIN_FAILURES, window_s: float = LOGIN_WINDOW_S) -> None:
        self.limit = limit
        self.window_s = window_s
        self._failures: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def wait_s(self, client: str, now: float | None = None) -> float:
        """Seconds until ``client`` may try again (0: now)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            recent = [t for t in self._failures.get(client, []) if now - t < self.window_s]
            if recent:
                self._failures[client] = recent
            else:
                self._failures.pop(client, None)
            return self.window_s - (now - recent[0]) if len(recent) >= self.limit else 0.0

    def failed(self, client: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            if len(self._failures) > 10_000:  # many clients: forget the oldest state rather than grow
                self._failures.clear()
            self._failures.setdefault(client, []).append(now)

    def succeeded(self, client: str) -> None:
        with self._lock:
            self._failures.pop(client, None)


def create_edge_app(
    agent_status: Callable[[], dict],
    store: EdgeStoreLike,
    snapshot_dir: Path,
    token: str,
) -> FastAPI:
    """The edge page as an ASGI app.

    ``agent_status``: called per request (``EdgeAgent.status``); ``store``: the agent's local database;
    ``snapshot_dir``: folder of ``<camera_id>.jpg`` snapshots the agent refreshes; ``token``: the local
    secret every data request must carry.
    """
    if not token or len(token) < 8:
        raise TinyActError("the edge web page needs a token of at least 8 characters (web token in the edge config)")
    snapshot_dir = Path(snapshot_dir)
    app = FastAPI(title="TinyAct edge", docs_url=None, redoc_url=None, openapi_url=None)
    started = time.time()
    sessions = SessionSigner(token)
    throttle = LoginThrottle()

    def client_of(request: Request) -> str:
        return request.client.host if request.client else "unknown"

    def token_ok(given: str | None) -> bool:
        if not given:
            return False
        return hmac.compare_digest(given.encode(), token.encode())

    def check_throttle(request: Request) -> None:
        wait = throttle.wait_s(client_of(request))
        if wait > 0:
            raise HTTPException(429, f"too many wrong tokens from this address; try again in {int(wait) + 1} s",
                                headers={"Retry-After": str(int(wait) + 1)})

    def authorized(request: Request) -> bool:
        header = request.headers.get("authorization", "")
        given = [header[7:].strip() if header.lower().startswith("bearer ") else None,
                 request.headers.get("x-tinyact-token")]
        given = [g for g in given if g]
        if sessions.valid(request.cookies.get(COOKIE)):
            return True
        if not given:
            return False
        check_throttle(request)  # a script guessing tokens in headers is throttled like the login form
        if any(token_ok(g) for g in given):
            return True
        throttle.failed(client_of(request))
        return False

    def require(request: Request) -> None:
        if not authorized(request):
            raise HTTPException(401, "sign in with the edge token (web token of the edge config)")

    def snapshot_path(camera_id: str) -> Path:
        # The id pattern has no '/' or '..': the path cannot leave the snapshot folder.
        if not _CAMERA_RE.match(camera_id):
            raise HTTPException(404, "no such camera")
        return snapshot_dir / f"{camera_id}.jpg"

    @app.exception_handler(HTTPException)
    async def _error(request: Request, error: HTTPException) -> JSONResponse:
        code = {401: "unauthorized", 429: "too_many_attempts"}.get(error.status_code, "error")
        return JSONResponse({"error": code, "detail": error.detail}, status_code=error.status_code,
                            headers=getattr(error, "headers", None))

    @app.get("/", include_in_schema=False)
    async def page(request: Request) -> Response:
        given = request.query_params.get("token")
        if given is not None:
            # A link with ?token= signs in and drops the token from the address bar (throttled like a login).
            response = RedirectResponse("/", status_code=303)
            if throttle.wait_s(client_of(request)) > 0:
                return response
            if token_ok(given):
                throttle.succeeded(client_of(request))
                _set_cookie(response)
            else:
                throttle.failed(client_of(request))
            return response
        return FileResponse(STATIC / "index.html", headers=_PAGE_HEADERS)

    def _set_cookie(response: Response) -> None:
        response.set_cookie(COOKIE, sessions.issue(), httponly=True, samesite="strict", max_age=SESSION_MAX_AGE_S)

    @app.post("/api/login")
    async def login(body: Login, request: Request) -> Response:
        check_throttle(request)
        if not token_ok(body.token):
            throttle.failed(client_of(request))
            raise HTTPException(401, "token not accepted")
        throttle.succeeded(client_of(request))
        response = JSONResponse({"ok": True})
        _set_cookie(response)
        return response

    @app.post("/api/logout")
    async def logout() -> Response:
        response = JSONResponse({"ok": True})
        response.delete_cookie(COOKIE)
        return response

    @app.get("/healthz")
    async def healthz() -> dict:
        return {"ok": True}

    @app.get("/api/status", dependencies=[Depends(require)])
    def api_status() -> JSONResponse:
        # Sync route (run in the thread pool): the store and the agent status do blocking SQLite reads.
        status = agent_status() or {}
        body = {
            "now": datetime.now(UTC).isoformat(),
            "uptime_s": round(time.time() - started, 1),
            "agent": _scalars(status),
            "counts": store.counts(),
            "cameras": camera_rows(status, store.latest_per_camera(), snapshot_dir),
            "encoder_mismatch": status.get("encoder_mismatch"),
        }
        return JSONResponse(jsonable_encoder(body))

    @app.get("/api/history", dependencies=[Depends(require)])
    def api_history(limit: int = Query(50, ge=1, le=1000), camera: str | None = None) -> JSONResponse:
        rows = store.recent(limit) if camera is None else store.recent(limit, camera_id=camera)
        items = [{k: _iso(v) for k, v in r.items()} for r in rows]
        return JSONResponse(jsonable_encoder({"items": items}))

    @app.get("/snapshots/{camera_id}.jpg", dependencies=[Depends(require)])
    async def snapshot(camera_id: str) -> Response:
        path = snapshot_path(camera_id)
        try:
            data = path.read_bytes()  # whole file at once: the agent replaces it atomically
        except OSError:
            raise HTTPException(404, f"no snapshot of camera {camera_id} yet") from None
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "no-store"})

    @app.get("/stream/{camera_id}.mjpg", dependencies=[Depends(require)])
    async def stream(camera_id: str, request: Request, fps: float = Query(2.0, gt=0, le=30)) -> StreamingResponse:
        path = snapshot_path(camera_id)

        async def frames():
            # Each part is followed at once by the next boundary: browsers show a part only when they see
            # the boundary after it, and a new snapshot may take a whole capture interval to arrive.
            yield b"--frame\r\n"
            last = None
            while not await request.is_disconnected():
                try:
                    mtime = path.stat().st_mtime_ns
                    if mtime != last:
                        data = path.read_bytes()
                        last = mtime
                        yield (b"Content-Type: image/jpeg\r\nContent-Length: " + str(len(data)).encode()
                               + b"\r\n\r\n" + data + b"\r\n--frame\r\n")
                except OSError:
                    pass
                await asyncio.sleep(1.0 / fps)

        return StreamingResponse(frames(), media_type="multipart/x-mixed-replace; boundary=frame",
                                 headers={"Cache-Control": "no-store"})

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def serve_edge_app(app: FastAPI, host: str = "127.0.0.1", port: int = 0):
    """Start ``app`` with uvicorn in a daemon thread; returns ``(url, stop)``. Used by the agent and the demo."""
    import socket
    import threading

    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name=f"tinyact-edge-web-{port}",
                              daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise TinyActError(f"the edge web page did not start on {host}:{port}")
        time.sleep(0.02)

    def stop() -> None:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()

    shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
    return f"http://{shown}:{port}", stop
