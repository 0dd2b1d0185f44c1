"""Running the service: in the foreground (``tinyact cloud serve``) or in the background from Python.

From Python (tests, the edge, the demo)::

    from tinyact.cloud.server import serve_in_background
    from tinyact.cloud.devices import add_device

    with serve_in_background(model="runs/svm", db="sqlite:///cloud.db", admin_token="s3cret") as cloud:
        key = add_device(cloud.db_url, "edge-1").key
        httpx.post(f"{cloud.url}/v1/clips", json=..., headers={"Authorization": f"Bearer {key}"})

``mode="thread"`` (default) runs uvicorn in a thread of this process on a free port; ``mode="process"`` starts
``python -m tinyact cloud serve`` in a child process (a separate interpreter: no shared GIL, used by the
load benchmark). Both wait until ``/readyz`` answers (or ``/healthz`` when no model is given) and stop
cleanly on exit.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx

from tinyact.cloud.config import ADMIN_TOKEN_ENV, VIEWER_TOKEN_ENV, CloudConfig, resolve_db_url
from tinyact.cloud.protocol import RequestDeadlineProtocol
from tinyact.errors import TinyActError

logger = logging.getLogger(__name__)


class ServiceStartError(TinyActError):
    """The service did not come up; the message includes what it printed."""


@dataclass
class RunningService:
    """A service started by :func:`serve_in_background`."""

    url: str
    db_url: str
    config: CloudConfig
    admin_token: str | None
    viewer_token: str | None
    app: Any = None  # the FastAPI app (thread mode only)
    process: subprocess.Popen | None = None  # process mode only
    log_path: Path | None = field(default=None, repr=False)

    def admin_headers(self) -> dict[str, str]:
        if not self.admin_token:
            raise TinyActError("this service was started without an admin token")
        return {"Authorization": f"Bearer {self.admin_token}"}

    def add_device(self, name: str) -> str:
        """Register a device in this service's database and return its key."""
        from tinyact.cloud.devices import add_device

        return add_device(self.db_url, name).key


def uvicorn_limits(cfg: CloudConfig) -> dict[str, Any]:
    """Connection limits and timeouts passed to uvicorn (docs/CLOUD.md, "Limits and isolation")."""
    return {
        "limit_concurrency": cfg.max_connections,  # beyond: 503 instead of unbounded tasks and memory
        "timeout_keep_alive": cfg.keep_alive_s,  # idle keep-alive connections do not pile up
        "h11_max_incomplete_event_size": cfg.max_header_bytes,  # request line + headers
        # Slow or silent clients are closed at the request deadline (cloud/protocol.py).
        "http": functools.partial(RequestDeadlineProtocol, timeout_s=cfg.request_timeout_s),
    }


def bind_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` (not yet listening); :class:`ServiceStartError` if the address is
    taken or invalid. The service binds before its start-up (which may activate ``--model`` for every replica),
    so a second service on a busy port fails without touching the shared database."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        raise ServiceStartError(
            f"cannot listen on {host}:{port}: {error.strerror or error} (is another service using the port? pick "
            "another with --port)"
        ) from None
    return sock


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def _wait_ready(url: str, timeout: float, need_model: bool, alive=lambda: True) -> None:
    deadline = time.monotonic() + timeout
    path = "/readyz" if need_model else "/healthz"
    last = "no answer"
    while time.monotonic() < deadline:
        if not alive():
            raise ServiceStartError("the service exited during start-up")
        try:
            response = httpx.get(url + path, timeout=2.0)
            if response.status_code == 200:
                return
            last = f"{response.status_code} {response.text[:200]}"
        except httpx.HTTPError as error:
            last = str(error)
        time.sleep(0.05)
    raise ServiceStartError(f"the service at {url} was not ready within {timeout:g} s ({path}: {last})")


@contextmanager
def serve_in_background(
    model: str | Path | None = None,
    db: str | Path | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    admin_token: str | None = None,
    viewer_token: str | None = None,
    mode: Literal["thread", "process"] = "thread",
    config: CloudConfig | None = None,
    startup_timeout: float = 60.0,
    **settings: Any,
) -> Iterator[RunningService]:
    """Start the service on ``host`` (a free port unless ``port``), yield a :class:`RunningService` whose
    ``url`` is ready for requests, and stop it on exit.

    ``model``: classifier folder (``None``: the database's active model, or none). ``db``: database URL or
    SQLite path (default: a SQLite file under the data directory). ``admin_token`` / ``viewer_token``: the
    secrets (default: ``$TINYACT_ADMIN_TOKEN`` / ``$TINYACT_VIEWER_TOKEN``). Other keyword arguments are
    :class:`~tinyact.cloud.config.CloudConfig` fields (``batch_window_ms=0``, ``mqtt="mqtt://…"``, …).
    """
    base = config.model_dump() if config is not None else {}
    base.update({k: v for k, v in {"model": model, "db": db}.items() if v is not None})
    base.update(settings)
    db_url = base["db"] = resolve_db_url(base.get("db"))
    base["host"] = host
    base["port"] = port or free_port(host)
    cfg = CloudConfig.from_dict(base)
    admin_token = admin_token or os.environ.get(ADMIN_TOKEN_ENV) or None
    viewer_token = viewer_token or os.environ.get(VIEWER_TOKEN_ENV) or None
    url = f"http://{cfg.host}:{cfg.port}"
    if mode == "thread":
        with _serve_thread(cfg, admin_token, viewer_token, startup_timeout) as app:
            yield RunningService(url, db_url, cfg, admin_token, viewer_token, app=app)
    elif mode == "process":
        with _serve_process(cfg, admin_token, viewer_token, startup_timeout) as (process, log_path):
            yield RunningService(url, db_url, cfg, admin_token, viewer_token, process=process, log_path=log_path)
    else:
        raise TinyActError(f"unknown mode {mode!r}: use thread or process")


@contextmanager
def _serve_thread(cfg: CloudConfig, admin_token, viewer_token, timeout: float):
    import uvicorn

    from tinyact.cloud.app import create_app

    app = create_app(cfg, admin_token=admin_token, viewer_token=viewer_token)
    server = uvicorn.Server(
        uvicorn.Config(app, host=cfg.host, port=cfg.port, log_level="warning", lifespan="on", **uvicorn_limits(cfg))
    )
    sock = bind_socket(cfg.host, cfg.port)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            server.run(sockets=[sock])
        except BaseException as error:  # surfaced to the caller below
            errors.append(error)

    thread = threading.Thread(target=run, name=f"tinyact-cloud-{cfg.port}", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + timeout
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                server.should_exit = True
                detail = f": {errors[0]}" if errors else " (see the log above)"
                raise ServiceStartError(f"the cloud service did not start{detail}")
            time.sleep(0.02)
        yield app
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


@contextmanager
def _serve_process(cfg: CloudConfig, admin_token, viewer_token, timeout: float):
    env = dict(os.environ)
    for name, value in ((ADMIN_TOKEN_ENV, admin_token), (VIEWER_TOKEN_ENV, viewer_token)):
        if value:
            env[name] = value
    src = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")  # run this checkout's code
    workdir = Path(tempfile.mkdtemp(prefix="tinyact-cloud-"))
    config_path = workdir / "cloud.yaml"
    config_path.write_text(cfg.to_yaml())
    log_path = workdir / "service.log"
    log = open(log_path, "wb")  # noqa: SIM115 - the child writes to it until the context exits
    process = subprocess.Popen(
        [sys.executable, "-m", "tinyact", "cloud", "serve", "--config", str(config_path)],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=_die_with_parent,
    )
    url = f"http://{cfg.host}:{cfg.port}"
    try:
        try:
            _wait_ready(url, timeout, need_model=cfg.model is not None, alive=lambda: process.poll() is None)
        except ServiceStartError as error:
            log.flush()
            tail = log_path.read_text(errors="replace")[-2000:]
            raise ServiceStartError(f"{error}; its output:\n{tail}") from None
        yield process, log_path
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        log.close()


def _die_with_parent() -> None:
    """In the child, before exec: ask Linux to SIGTERM it when the parent dies (a crashed test or benchmark
    must not leave servers behind). No-op elsewhere."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


def run_server(cfg: CloudConfig, *, admin_token: str | None = None) -> None:
    """Serve in the foreground until SIGINT/SIGTERM (``tinyact cloud serve``)."""
    import uvicorn

    if cfg.workers == 1:
        from tinyact.cloud.app import create_app

        # Bind first: uvicorn runs the app's start-up (which activates --model in the shared database) before
        # it binds, so a service that cannot get its port would still switch every replica's model.
        sock = bind_socket(cfg.host, cfg.port)
        try:
            app = create_app(cfg, admin_token=admin_token)
            config = uvicorn.Config(app, host=cfg.host, port=cfg.port, log_level=cfg.log_level, lifespan="on",
                                    **uvicorn_limits(cfg))
            server = uvicorn.Server(config)
            server.run(sockets=[sock])
        finally:
            sock.close()
        if not server.started:
            raise ServiceStartError("the cloud service did not start (see the log above)")
        return
    # Several worker processes: each builds its app from the config in the environment, and metrics are
    # shared through prometheus_client's multiprocess directory.
    os.environ["TINYACT_CLOUD_CONFIG"] = json.dumps(cfg.model_dump(mode="json"))
    if admin_token:
        os.environ[ADMIN_TOKEN_ENV] = admin_token
    metrics_dir = tempfile.mkdtemp(prefix="tinyact-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    # uvicorn binds the port in this process before it starts the workers (and their start-up).
    uvicorn.run(
        "tinyact.cloud.app:app_from_env", factory=True, host=cfg.host, port=cfg.port,
        workers=cfg.workers, log_level=cfg.log_level, lifespan="on", **uvicorn_limits(cfg),
    )
