"""Settings of an edge device (``tinyact edge run --config edge.yaml``): one pydantic model, YAML in.

Secrets never live in the YAML: the device key (``tak_…``, from ``tinyact cloud device add``) comes from the
environment variable named by ``device_key_env`` (default ``TINYACT_DEVICE_KEY``) or from ``device_key_file``;
the local web page's token likewise from ``web.token_env`` / ``web.token_file``. A ``device_key`` key in the
YAML is refused with a message saying where the key goes.

Example (``tinyact edge init`` writes a commented one)::

    device_id: edge-1
    cloud_url: http://127.0.0.1:8000
    encoder: {checkpoint: runs/ae/model.pt, backend: torch}
    cameras:
      - {id: cam-1, source: videos/lobby.mp4}
      - {id: cam-2, source: rtsp://10.0.0.7/stream1}
    schedule: {interval_s: 10, capture_fps: 8}
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from tinyact.config import TinyActConfig
from tinyact.errors import ConfigError
from tinyact.paths import data_home
from tinyact.wire import CAMERA_ID_PATTERN, DEVICE_ID_PATTERN, WireDtype

DEVICE_KEY_ENV = "TINYACT_DEVICE_KEY"
MQTT_USERNAME_ENV = "TINYACT_MQTT_USERNAME"
MQTT_PASSWORD_ENV = "TINYACT_MQTT_PASSWORD"
WEB_TOKEN_ENV = "TINYACT_EDGE_TOKEN"
Backend = Literal["torch", "torch-bf16", "torch-channels-last", "torch-compile", "torch-int8", "onnx", "onnx-int8"]
_SECRET_KEYS = {"device_key", "key", "api_key", "token", "password"}


class CameraConfig(TinyActConfig):
    """One camera: a video file (played at real-time pace and looped, a simulated CCTV camera), an
    ``rtsp://`` / ``http(s)://`` stream, or a V4L2 webcam (``/dev/video0`` or ``v4l2:///dev/video0``)."""

    id: str = Field(pattern=CAMERA_ID_PATTERN, description="camera name sent to the cloud: letters, digits, _ . : - (max 64)")
    source: str = Field(min_length=1, description="video file, rtsp:// or http(s):// URL, /dev/videoN or v4l2:///dev/videoN")
    fps: float | None = Field(None, gt=0, le=240, description="files: playback rate (default: the file's); webcams: rate to request")
    resolution: tuple[int, int] | None = Field(None, description="webcams: [width, height] to request (default: the device's)")
    enabled: bool = Field(True, description="false: keep the entry but do not capture")

    @property
    def kind(self) -> Literal["file", "stream", "v4l2"]:
        """How this source is read."""
        if self.source.startswith("v4l2://") or self.source.startswith("/dev/video"):
            return "v4l2"
        if "://" in self.source and not self.source.startswith("file:"):
            return "stream"
        return "file"


class ScheduleConfig(TinyActConfig):
    """Round-robin capture: every ``interval_s`` each camera gives one clip of ``frames_per_clip`` frames
    sampled at ``capture_fps`` (a window of ``(frames_per_clip - 1) / capture_fps`` seconds)."""

    interval_s: float = Field(10.0, gt=0, le=86_400, description="seconds between two clips of one camera (paper: 10)")
    frames_per_clip: int | None = Field(
        None, ge=1, le=256, description="frames per clip; default: what the encoder takes (paper: 16); must match it")
    capture_fps: float = Field(8.0, gt=0, le=120, description="rate at which the clip's frames are sampled")
    capture_timeout_s: float = Field(15.0, gt=0, description="a camera that gives no clip within this is marked down")



class EncoderConfig(TinyActConfig):
    """The clip encoder that runs on the device."""

    checkpoint: Path = Field(Path("zoo:everyday-64"), description="zoo:NAME (a pretrained encoder shipped with "
                             "TinyAct, see `tinyact zoo list`) or a model file (`tinyact train ae` / `train kd`)")
    backend: Backend = Field(
        "torch", description="torch (fp32), torch-bf16, torch-channels-last, torch-compile, torch-int8, onnx, onnx-int8")
    onnx_path: Path | None = Field(None, description="onnx backends: the exported model (default: next to the checkpoint)")
    int8_path: Path | None = Field(
        None, description="torch-int8: the file from `tinyact edge quantize --format torch` (default: next to the checkpoint)")
    input_size: int | None = Field(None, ge=16, le=1024, description="frame side in pixels (default: the checkpoint's)")
    threads: int | None = Field(None, ge=1, le=256, description="torch / onnxruntime threads (default: library default)")
    max_batch: int | None = Field(
        None, ge=1, le=4096, description="encode a round in batches of at most this many clips (bounds memory with "
        "many cameras; default: the whole round in one call)")
    mirror: bool = Field(
        False, description="send the mean latent of each clip and its left-right mirror image (twice the encoder "
        "work): what a classifier fitted on mirrored readings expects (a bundle that chose `+mirror` sets it)")


class TransportConfig(TinyActConfig):
    """How latents reach the cloud and results come back."""

    kind: Literal["http", "mqtt"] = Field("http", description="http: POST /v1/clips; mqtt: publish at QoS 1")
    mqtt_url: str | None = Field(None, description="mqtt://HOST[:PORT] (transport mqtt); login: mqtt_username + password")
    mqtt_username: str | None = Field(
        None, description="broker login (default: $TINYACT_MQTT_USERNAME, else device_id when a password is set)")
    mqtt_password_env: str = Field(
        MQTT_PASSWORD_ENV, description="environment variable holding the broker password (`tinyact cloud device mqtt-password`)")
    mqtt_password_file: Path | None = Field(
        None, description="file holding the broker password (used when the variable is unset); none: anonymous")
    wire_dtype: WireDtype = Field("float16", description="latent encoding: float16 (default), int8 (+scale), float32")
    gzip: Literal["auto", "always", "never"] = Field(
        "auto", description="compress request bodies (Content-Encoding: gzip) when it saves at least 10 %")
    max_clips_per_request: int = Field(64, ge=1, le=256, description="clips per POST (the cloud caps at 256)")
    timeout_s: float = Field(15.0, gt=0, description="HTTP request timeout")
    retry_base_s: float = Field(1.0, gt=0, description="first retry delay; doubles each failure (with jitter)")
    retry_max_s: float = Field(60.0, gt=0, description="longest retry delay")
    ack_timeout_s: float = Field(30.0, gt=0, description="mqtt: republish a clip whose result has not come back in this time")
    results_poll_s: float = Field(30.0, gt=0, description="poll GET /v1/results this often for results missed during outages")
    model_check_s: float = Field(
        60.0, gt=0,
        description="while the cloud's classifier expects another encoder (clips held back), read GET /v1/model "
                    "this often and send the held clips once it matches",
    )

    @model_validator(mode="after")
    def _mqtt_needs_url(self) -> TransportConfig:
        if self.kind == "mqtt" and not self.mqtt_url:
            raise ValueError("transport kind mqtt needs mqtt_url (mqtt://HOST[:PORT])")
        return self


class OutboxConfig(TinyActConfig):
    """The local queue of latents not yet acknowledged by the cloud."""

    max_pending: int = Field(100_000, ge=1, description="beyond this, the oldest pending clips are dropped (counted and logged)")


class RetentionConfig(TinyActConfig):
    """What is kept on the device for the local page: snapshot history (and the capture table's rows)."""

    max_age_h: float = Field(24.0 * 7, gt=0, description="delete snapshots and capture rows older than this many hours")
    max_mb: float = Field(512.0, gt=0, description="delete the oldest snapshots when they take more than this")
    keep_history: bool = Field(True, description="keep one JPEG per clip (snapshots/history/) for the page's history")


class WebConfig(TinyActConfig):
    """The local web page (served by the agent on the LAN)."""

    enabled: bool = Field(True, description="serve the page")
    address: str = Field("127.0.0.1:8080", description="HOST:PORT to listen on (0.0.0.0:8080 for the LAN)")
    token_env: str = Field(WEB_TOKEN_ENV, description="environment variable holding the page's access token")
    token_file: Path | None = Field(None, description="file holding the token (used when the variable is unset)")

    @field_validator("address")
    @classmethod
    def _host_port(cls, value: str) -> str:
        host, _, port = value.rpartition(":")
        if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError(f"address {value!r} must be HOST:PORT, e.g. 127.0.0.1:8080")
        return value

    @property
    def host(self) -> str:
        return self.address.rpartition(":")[0]

    @property
    def port(self) -> int:
        return int(self.address.rpartition(":")[2])


class EdgeConfig(TinyActConfig):
    """Everything ``tinyact edge run`` needs (``tinyact edge init`` writes a commented example)."""

    device_id: str = Field(pattern=DEVICE_ID_PATTERN, description="this device's name, as registered in the cloud")
    cloud_url: str = Field("http://127.0.0.1:8000", description="base URL of the cloud service")
    device_key_env: str = Field(DEVICE_KEY_ENV, description="environment variable holding the device key")
    device_key_file: Path | None = Field(None, description="file holding the device key (used when the variable is unset)")
    encoder: EncoderConfig
    cameras: list[CameraConfig] = Field(min_length=1, description="the cameras, read round-robin")
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    transport: TransportConfig = Field(default_factory=TransportConfig)
    outbox: OutboxConfig = Field(default_factory=OutboxConfig)
    retention: RetentionConfig = Field(default_factory=RetentionConfig)
    web: WebConfig = Field(default_factory=WebConfig)
    data_dir: Path = Field(default_factory=lambda: data_home() / "edge", description="local database, snapshots, status file")

    @model_validator(mode="before")
    @classmethod
    def _no_secrets(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key in _SECRET_KEYS & set(data):
                raise ValueError(
                    f"`{key}` must not be in the config file: put the device key in ${DEVICE_KEY_ENV} "
                    "(or the variable named by device_key_env) or in a file named by device_key_file"
                )
        return data

    @field_validator("cloud_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"cloud_url {value!r} must start with http:// or https://")
        return value.rstrip("/")

    @field_validator("cameras")
    @classmethod
    def _unique_ids(cls, cameras: list[CameraConfig]) -> list[CameraConfig]:
        seen: set[str] = set()
        for camera in cameras:
            if camera.id in seen:
                raise ValueError(f"camera id {camera.id!r} is used twice; every camera needs its own id")
            seen.add(camera.id)
        return cameras

    # ---- derived locations and secrets -------------------------------------------------------------------
    @property
    def db_path(self) -> Path:
        """The local SQLite database (captures, results, outbox)."""
        return self.data_dir / "edge.db"

    @property
    def snapshot_dir(self) -> Path:
        """Latest JPEG per camera: ``<snapshot_dir>/<camera_id>.jpg``; per-clip history under ``history/``."""
        return self.data_dir / "snapshots"

    @property
    def status_path(self) -> Path:
        """JSON written by the running agent after every round (read by ``tinyact edge status``)."""
        return self.data_dir / "status.json"

    def device_key(self) -> str:
        """The device key from the environment or the key file; :class:`ConfigError` if neither has one."""
        return _secret(self.device_key_env, self.device_key_file, "device key",
                       f"register the device with `tinyact cloud device add {self.device_id}` and export "
                       f"{self.device_key_env}=<key> (or set device_key_file)")

    def mqtt_credentials(self) -> tuple[str | None, str | None]:
        """The broker login ``(username, password)``: the password from ``transport.mqtt_password_env`` or
        ``transport.mqtt_password_file``, the username from ``transport.mqtt_username``, ``$TINYACT_MQTT_USERNAME``
        or ``device_id`` (what ``tinyact cloud broker-config`` registers); ``(None, None)`` without a password
        (an anonymous broker)."""
        t = self.transport
        password = os.environ.get(t.mqtt_password_env, "").strip() or None
        if password is None and t.mqtt_password_file is not None:
            password = _secret(t.mqtt_password_env, t.mqtt_password_file, "MQTT password",
                               f"print it with `tinyact cloud device mqtt-password {self.device_id}` on the cloud")
        if password is None:
            return None, None
        return t.mqtt_username or os.environ.get(MQTT_USERNAME_ENV, "").strip() or self.device_id, password

    def web_token(self) -> str:
        """The local page's token from the environment or the token file; :class:`ConfigError` if none."""
        return _secret(self.web.token_env, self.web.token_file, "web page token",
                       f"export {self.web.token_env}=<a long random string> (or set web.token_file)")


def _secret(env: str, file: Path | None, what: str, hint: str) -> str:
    value = os.environ.get(env, "").strip()
    if value:
        return value
    if file is not None:
        path = Path(file).expanduser()
        if not path.is_file():
            raise ConfigError(f"{what} file {path} does not exist; {hint}")
        value = path.read_text().strip()
        if value:
            return value
        raise ConfigError(f"{what} file {path} is empty; {hint}")
    raise ConfigError(f"no {what}: ${env} is not set; {hint}")


EXAMPLE_CONFIG = """\
# TinyAct edge device (tinyact edge run --config edge.yaml). Unknown keys are refused.
# Secrets are NOT written here: export TINYACT_DEVICE_KEY=<key from `tinyact cloud device add edge-1`>
# and TINYACT_EDGE_TOKEN=<random string for the local web page>.

device_id: edge-1                    # the name registered in the cloud
cloud_url: http://127.0.0.1:8000     # base URL of `tinyact cloud serve`
# device_key_env: TINYACT_DEVICE_KEY # variable that holds the device key
# device_key_file: /etc/tinyact/device.key   # or a file with the key (read when the variable is unset)

encoder:
  checkpoint: zoo:everyday-64        # the pretrained encoder shipped with TinyAct, or a model.pt of yours
  backend: torch                     # torch | torch-bf16 | torch-int8 | onnx | onnx-int8 (int8: `tinyact edge quantize`)
  # onnx_path: model.onnx            # default: next to the checkpoint
  # int8_path: model.int8.pt         # torch-int8; default: next to the checkpoint
  # input_size: 112                  # default: the checkpoint's
  # threads: 2
  # max_batch: 16                    # split big rounds to bound memory (default: one call per round)
  # mirror: false                    # true: mean latent of each clip and its mirror image (the bundle's)

cameras:                             # read round-robin; a failing camera is retried and never stops the others
  - id: cam-1
    source: videos/lobby.mp4         # a file: played at real-time pace and looped (a simulated CCTV camera)
  # - id: cam-2
  #   source: rtsp://10.0.0.7:554/stream1     # RTSP / HTTP streams through PyAV
  # - id: cam-3
  #   source: /dev/video0            # V4L2 webcam
  #   fps: 15
  #   resolution: [640, 480]

schedule:
  interval_s: 10                     # one clip per camera every 10 s (the paper's round-robin)
  # frames_per_clip: 16              # default: what the encoder takes (must match it)
  capture_fps: 8                     # 16 frames over ~1.9 s
  # capture_timeout_s: 15            # a camera that gives no clip in this time is marked down

transport:
  kind: http                         # http | mqtt
  # mqtt_url: mqtt://127.0.0.1:1883  # for kind: mqtt (QoS 1)
  # mqtt_password_env: TINYACT_MQTT_PASSWORD   # broker password (`tinyact cloud device mqtt-password edge-1`);
  # mqtt_password_file: /etc/tinyact/mqtt.pw   # login = device_id; no password: anonymous
  wire_dtype: float16                # float16 (2 KB of latent), int8 (1 KB + scale), float32
  gzip: auto                         # auto | always | never
  # max_clips_per_request: 64
  # retry_base_s: 1                  # exponential backoff with jitter, up to retry_max_s
  # retry_max_s: 60

outbox:
  max_pending: 100000                # oldest pending clips are dropped beyond this (counted, logged)

retention:                           # snapshots kept for the local page
  max_age_h: 168
  max_mb: 512

web:
  address: 127.0.0.1:8080            # 0.0.0.0:8080 to serve the LAN
  # token_env: TINYACT_EDGE_TOKEN

# data_dir: tinyact-data/edge        # database, snapshots, status file
"""
