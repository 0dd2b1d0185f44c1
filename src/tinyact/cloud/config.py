"""Settings of the cloud service (``tinyact cloud serve``): one pydantic model, YAML in, echoed at start-up.

Secrets never live here: the admin token comes from ``TINYACT_ADMIN_TOKEN``, the dashboard's read-only token
from ``TINYACT_VIEWER_TOKEN``, MQTT credentials from ``TINYACT_MQTT_USERNAME`` / ``TINYACT_MQTT_PASSWORD`` (or the
password derived from ``TINYACT_MQTT_SECRET``, see :mod:`tinyact.cloud.broker`).
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field

from tinyact.config import TinyActConfig
from tinyact.errors import ConfigError
from tinyact.paths import data_home

ADMIN_TOKEN_ENV = "TINYACT_ADMIN_TOKEN"
VIEWER_TOKEN_ENV = "TINYACT_VIEWER_TOKEN"


class CloudConfig(TinyActConfig):
    """Everything ``tinyact cloud serve`` can be told (options override a ``--config`` YAML file)."""

    host: str = Field("127.0.0.1", title="Bind address", description="Interface to listen on (0.0.0.0 for all).")
    port: int = Field(8000, ge=0, le=65535, title="Port", description="TCP port; 0 picks a free one.")
    db: str | None = Field(
        None,
        title="Database URL",
        description="SQLAlchemy URL (sqlite:///FILE or postgresql+psycopg://USER@HOST/DB) or a file path; "
        "default: a SQLite file under the data directory ($TINYACT_HOME/cloud/tinyact.db).",
    )
    model: Path | None = Field(
        None,
        title="Classifier folder",
        description="A folder written by `tinyact classify fit`; it becomes the active model. Without it the "
        "service uses the database's active model (the last one activated), or waits for POST /v1/admin/model.",
    )
    expected_encoder_hash: str | None = Field(
        None,
        title="Encoder hash",
        description="Refuse classifiers fitted on latents of another encoder (default: the first loaded model's).",
    )
    workers: int = Field(1, ge=1, le=64, title="Worker processes", description="uvicorn worker processes.")
    migrate: bool = Field(True, title="Migrate", description="Upgrade the database schema (Alembic) at start-up.")
    max_clips_per_request: int = Field(256, ge=1, le=10_000, title="Clips per request", description="Larger batches get 422.")
    max_body_bytes: int = Field(
        8 << 20, ge=1024, title="Body size limit", description="Request bodies over this many bytes get 413."
    )
    max_future_s: float = Field(
        300.0, ge=0, le=86_400, title="Clock skew",
        description="captured_at later than now + this many seconds gets 422 (at most a day).",
    )
    max_cameras_per_device: int = Field(
        256, ge=1, le=100_000, title="Cameras per device",
        description="Clips of a new camera_id get 422 once a device has this many cameras.",
    )
    batch_window_ms: float = Field(
        2.0,
        ge=0,
        le=1000,
        title="Micro-batch window",
        description="Concurrent requests arriving within this many ms are classified as one batch; 0 turns "
        "micro-batching off (each request is classified alone).",
    )
    batch_max_clips: int = Field(1024, ge=1, title="Micro-batch size", description="A batch is sent at once when it reaches this many clips.")
    blas_threads: int | None = Field(
        1,
        ge=1,
        title="BLAS threads",
        description="Threads of the BLAS library inside predict_proba (None: the library's default). One is "
        "fastest when requests are micro-batched: a thread pool spinning next to the web server costs more than "
        "it gives for batches of this size.",
    )
    rate_limit_per_s: float = Field(
        100.0, ge=0, title="Rate limit", description="Requests per second per device and process (0 = unlimited)."
    )
    rate_limit_burst: int = Field(200, ge=1, title="Rate-limit burst", description="Requests a device may send at once.")
    auth_cache_s: float = Field(
        0.0, ge=0, le=60, title="Key cache", description="Seconds a verified device key is trusted before the "
        "database is asked again. 0 (default): every request checks the key in the database, so a revoked or "
        "rotated key stops working at once on every replica; above 0 it keeps working up to this long on other "
        "replicas.",
    )
    max_connections: int = Field(
        1000, ge=1, title="Connection limit",
        description="uvicorn limit_concurrency: over this many open connections and tasks, new requests get 503.",
    )
    keep_alive_s: float = Field(
        5.0, gt=0, le=300, title="Keep-alive timeout",
        description="uvicorn timeout_keep_alive: idle keep-alive connections are closed after this many seconds.",
    )
    max_header_bytes: int = Field(
        16_384, ge=1024, le=1 << 20, title="Header size limit",
        description="uvicorn h11_max_incomplete_event_size: a request line plus headers larger than this is refused.",
    )
    request_timeout_s: float = Field(
        10.0, gt=0, le=600, title="Request deadline",
        description="a connection that has not sent a whole request (headers and body) this many seconds after it "
                    "opened or after its previous response is closed: idle, header-trickling and slow-body clients "
                    "cannot hold connections (a request being answered is never cut).",
    )
    model_poll_s: float = Field(
        5.0, ge=0, title="Model poll", description="Seconds between checks for a model activated by another replica (0 = never)."
    )
    results_page_max: int = Field(1000, ge=1, title="Results page size", description="Most results one GET /v1/results returns.")
    mqtt: str | None = Field(
        None, title="MQTT broker", description="mqtt://HOST[:PORT]: publish results to tinyact/<device>/<camera>/result."
    )
    mqtt_ingest: bool = Field(True, title="MQTT ingest", description="Also classify latents published to tinyact/+/+/clip.")
    mqtt_share_group: str | None = Field(
        "tinyact-cloud",
        title="MQTT shared subscription",
        description="Subscribe as $share/<group>/… so replicas split the clip messages instead of each getting all; "
        "empty for a plain subscription.",
    )
    mqtt_client_id: str | None = Field(
        None,
        title="MQTT client id",
        description="Fixed id with a persistent session (the broker keeps QoS 1 clips while the service is down); "
        "default: a random id and a clean session.",
    )
    mqtt_username: str | None = Field(
        None,
        title="MQTT username",
        description="The service's broker login (default: $TINYACT_MQTT_USERNAME, else `tinyact-cloud` when a "
        "password is known). The password is never configured here: $TINYACT_MQTT_PASSWORD, or derived from "
        "$TINYACT_MQTT_SECRET, the secret `tinyact cloud broker-config` writes the broker's password file with.",
    )
    log_level: str = Field("info", title="Log level", description="uvicorn log level (debug, info, warning, error).")


def default_db_url() -> str:
    """``sqlite:///$TINYACT_HOME/cloud/tinyact.db`` (the folder is created)."""
    folder = data_home() / "cloud"
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder.resolve() / 'tinyact.db'}"


def resolve_db_url(db: str | Path | None) -> str:
    """A SQLAlchemy URL for ``db``: ``None`` -> the default SQLite file, a path -> SQLite, ``postgresql://`` ->
    the psycopg 3 driver."""
    if db is None or str(db) == "":
        return default_db_url()
    text = str(db)
    if "://" not in text:
        path = Path(text).expanduser()
        path.parent.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{path.resolve()}"
    if text.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + text.split("://", 1)[1]
    if not text.startswith(("sqlite", "postgresql")):
        raise ConfigError(f"unsupported database URL {text!r}: use sqlite:///FILE or postgresql+psycopg://USER@HOST/DB")
    return text


def env_token(name: str) -> str | None:
    """A secret from the environment; empty means unset."""
    value = os.environ.get(name, "").strip()
    return value or None
