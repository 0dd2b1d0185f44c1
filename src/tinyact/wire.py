"""The wire format between edge and cloud: latent encodings and the REST/MQTT message schemas.

One module, imported by both sides, so the edge and the cloud cannot drift apart. A latent travels as one of::

    [0.12, -0.5, …]                                              plain JSON numbers (the paper's format)
    {"dtype": "float32", "data": "<base64, little-endian>"}      4 bytes per value
    {"dtype": "float16", "data": "<base64, little-endian>"}      2 bytes per value (edge default)
    {"dtype": "int8", "scale": s, "zero_point": z, "data": …}    1 byte per value, x ≈ (q - z) · s

A batch sent to ``POST /v1/clips``::

    {"clips": [{"clip_id": "<uuid4>", "camera_id": "cam-1", "captured_at": "2026-11-24T10:00:00Z",
                "encoder_hash": "3f2a…", "latent": {"dtype": "float16", "data": "…"}}]}

``encoder_hash`` names the encoder that made the latent (the weight hash of its model file); the cloud refuses
a clip whose encoder differs from the one its active classifier was fitted on (409 ``encoder_mismatch``), so a
mismatched encoder and classifier never give silent nonsense. Messages of older edges without it are accepted
and counted. Raw video never appears here: a clip message has exactly the fields above.

What comes back is a :class:`StoredPrediction`, the one schema of a prediction the cloud has stored: as itself
in exports and on the dashboard, and as a :class:`ClipResult` (:meth:`StoredPrediction.result`) in the HTTP
responses, the results feed and on the MQTT result topic. The MQTT topics are built here too
(:func:`mqtt_topic`), for both sides.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlparse
from uuid import UUID

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt

from tinyact.errors import ConfigError

CAMERA_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"
DEVICE_ID_PATTERN = CAMERA_ID_PATTERN
WireDtype = Literal["float32", "float16", "int8"]
MAX_LATENT_VALUES = 16_384  # longest plain-list latent accepted (16× the 1024-d latents of TinyAct's encoders)
MAX_CLIPS_PER_MESSAGE = 10_000  # hard bound of ClipsIn.clips; the service's max_clips_per_request is lower
_NUMPY_DTYPE: dict[str, np.dtype[Any]] = {"float32": np.dtype("<f4"), "float16": np.dtype("<f2"), "int8": np.dtype("i1")}


class WireFormatError(ValueError):
    """A latent payload that cannot be decoded; the message says what is wrong."""


class EncodedLatent(BaseModel):
    """A latent vector as base64 bytes of ``dtype`` (little-endian); int8 adds ``scale`` and ``zero_point``."""

    model_config = ConfigDict(extra="forbid")

    dtype: WireDtype = Field(description="element type of `data`")
    data: str = Field(description="base64 of the little-endian array bytes", max_length=1_000_000)
    scale: float | None = Field(None, gt=0, description="int8 only: x = (q - zero_point) * scale")
    zero_point: int | None = Field(None, ge=-128, le=127, description="int8 only")


LatentField = Annotated[
    # Strict numbers: JSON booleans or numeric strings are not latents (lax floats would take true as 1.0).
    EncodedLatent | Annotated[list[StrictInt | StrictFloat], Field(max_length=MAX_LATENT_VALUES)],
    Field(description="the clip's latent: an encoded object or a plain JSON array of numbers"),
]


def encode_latent(vector: np.ndarray, dtype: WireDtype = "float16") -> EncodedLatent:
    """Encode a 1-D float vector. int8 uses a symmetric per-vector scale (``zero_point`` 0)."""
    vector = np.asarray(vector, dtype=np.float32).reshape(-1)
    if dtype == "int8":
        peak = float(np.max(np.abs(vector))) if vector.size else 0.0
        scale = peak / 127.0 if peak > 0 else 1.0
        q = np.clip(np.round(vector / scale), -127, 127).astype(np.int8)
        return EncodedLatent(dtype="int8", data=base64.b64encode(q.tobytes()).decode("ascii"), scale=scale, zero_point=0)
    raw = vector.astype(_NUMPY_DTYPE[dtype]).tobytes()
    return EncodedLatent(dtype=dtype, data=base64.b64encode(raw).decode("ascii"))


def decode_latent(latent: EncodedLatent | list[float] | list[int | float], *, check_finite: bool = True) -> np.ndarray:
    """Decode to float32 ``[D]``; raises :class:`WireFormatError` for bad base64, a partial element, a
    missing int8 scale, an empty vector, or (unless ``check_finite`` is off, for a caller that checks a whole
    batch at once) NaN/Inf values."""
    if isinstance(latent, list):
        with np.errstate(over="ignore"):  # values beyond float32 become inf and are refused below
            vector = np.asarray(latent, dtype=np.float32)
    else:
        try:
            # strict_mode: the alphabet, padding only at the end, no whitespace (as b64decode(validate=True),
            # without its regular expression pass over the text).
            raw = binascii.a2b_base64(latent.data, strict_mode=True)
        except (binascii.Error, ValueError):
            raise WireFormatError("latent.data is not valid base64") from None
        dtype = _NUMPY_DTYPE[latent.dtype]
        if len(raw) % dtype.itemsize:
            raise WireFormatError(f"latent.data has {len(raw)} bytes, not a whole number of {latent.dtype} values")
        values = np.frombuffer(raw, dtype=dtype)
        if latent.dtype == "int8":
            if latent.scale is None:
                raise WireFormatError("int8 latent needs `scale` (and optionally `zero_point`)")
            vector = (values.astype(np.float32) - float(latent.zero_point or 0)) * np.float32(latent.scale)
        else:
            vector = values.astype(np.float32)
    if vector.ndim != 1 or vector.size == 0:
        raise WireFormatError("latent must be a non-empty 1-D vector")
    if check_finite and not np.all(np.isfinite(vector)):
        raise WireFormatError("latent contains NaN or Inf")
    return vector


class ClipIn(BaseModel):
    """One clip's latent as sent by an edge device."""

    model_config = ConfigDict(extra="forbid")

    clip_id: UUID = Field(description="unique per device; a repeated id returns the stored result")
    camera_id: str = Field(pattern=CAMERA_ID_PATTERN, description="camera name: letters, digits, _ . : - (max 64)")
    captured_at: datetime = Field(description="capture time, ISO 8601 with time zone")
    encoder_hash: str | None = Field(
        None, min_length=1, max_length=200,
        description="hash of the encoder that made the latent (its model file's weight hash); the cloud refuses "
                    "(409 encoder_mismatch) a clip whose encoder is not the active classifier's. Optional for "
                    "older edges: a clip without it is accepted and counted",
    )
    latent: LatentField


class ClipsIn(BaseModel):
    """Body of ``POST /v1/clips``."""

    model_config = ConfigDict(extra="forbid")

    clips: list[ClipIn] = Field(min_length=1, max_length=MAX_CLIPS_PER_MESSAGE,
                                description="clips to classify (the server caps the count)")


class LabelScore(BaseModel):
    label: str
    score: float


class ClipResult(BaseModel):
    """The cloud's verdict on one clip, returned to the edge (HTTP response, results feed, MQTT)."""

    # A StoredPrediction under the names ClipIn uses (camera_id, device_id, cursor): StoredPrediction.result().

    clip_id: UUID
    camera_id: str
    captured_at: datetime
    label: str
    score: float
    top5: list[LabelScore]
    model_version: str
    device_id: str | None = None
    cursor: int | None = Field(None, description="position in the device's results feed")


class StoredPrediction(BaseModel):
    """A prediction as the cloud stores it: one row of an export (``model_dump(mode="json")``, the columns in
    this order) and of the dashboard; :meth:`result` is the same prediction as the edge receives it. ::

        StoredPrediction    id      device     camera     clip_id  captured_at  received_at  label  score  top5  model_version
        ClipResult          cursor  device_id  camera_id  clip_id  captured_at  -            label  score  top5  model_version
    """

    model_config = ConfigDict(frozen=True)

    id: int = Field(description="position in the results feed (`since`/`cursor`)")
    device: str
    camera: str
    clip_id: UUID
    captured_at: datetime
    received_at: datetime
    label: str
    score: float
    top5: list[LabelScore]
    model_version: str

    def result(self) -> dict[str, Any]:
        """This prediction as a :class:`ClipResult`, JSON-ready: serialised with ``pydantic_core.to_json`` it
        gives the bytes of ``ClipResult.model_dump_json()``, without building the model (the hot path)."""
        return {
            "clip_id": self.clip_id,
            "camera_id": self.camera,
            "captured_at": self.captured_at,
            "label": self.label,
            "score": self.score,
            "top5": self.top5,
            "model_version": self.model_version,
            "device_id": self.device,
            "cursor": self.id,
        }


class ClipsOut(BaseModel):
    """Response of ``POST /v1/clips``: one result per clip, in request order."""

    results: list[ClipResult]


class ResultsPage(BaseModel):
    """Response of ``GET /v1/results?since=<cursor>``."""

    results: list[ClipResult]
    next_cursor: int = Field(description="pass as `since` to get the results after these")


MQTT_TOPIC_ROOT = "tinyact"
MqttTopicKind = Literal["clip", "result", "error"]


def mqtt_topic(device_id: str, camera_id: str, kind: MqttTopicKind) -> str:
    """``tinyact/<device>/<camera>/<kind>``: ``+`` for the device or camera makes a subscription filter."""
    return f"{MQTT_TOPIC_ROOT}/{device_id}/{camera_id}/{kind}"


def mqtt_clip_topic(device_id: str, camera_id: str) -> str:
    """Topic an edge publishes a clip's latent to (body: one :class:`ClipIn` as JSON)."""
    return mqtt_topic(device_id, camera_id, "clip")


def mqtt_result_topic(device_id: str, camera_id: str) -> str:
    """Topic the cloud publishes results to (body: one :class:`ClipResult`; QoS 1, retained)."""
    return mqtt_topic(device_id, camera_id, "result")


def mqtt_error_topic(device_id: str, camera_id: str) -> str:
    """Topic the cloud publishes a refused clip's reason to (body: ``{"clip_id", "error", "detail"}``; QoS 1,
    not retained). Only the cloud's broker account may write it (``tinyact cloud broker-config``)."""
    return mqtt_topic(device_id, camera_id, "error")


def split_mqtt_topic(topic: str) -> tuple[str, str, str] | None:
    """``tinyact/<device>/<camera>/<kind>`` -> ``(device, camera, kind)``; ``None`` for any other topic."""
    parts = topic.split("/")
    if len(parts) != 4 or parts[0] != MQTT_TOPIC_ROOT:
        return None
    return parts[1], parts[2], parts[3]


ENCODER_MISMATCH = "encoder_mismatch"
"""Error code of a clip made by another encoder than the active classifier's (HTTP 409, MQTT ``…/error``): not
the clip's fault, so the edge keeps it until the two sides match again."""


class ErrorOut(BaseModel):
    """Body of every 4xx/5xx answer of the cloud API: a machine-readable ``error`` code and a ``detail``
    sentence saying what is wrong (and what to do); validation errors add the failing fields in ``errors``."""

    error: str = Field(description="short code, e.g. invalid_request, wrong_latent_size, unauthorized, rate_limited")
    detail: str = Field(description="what is wrong, for a person")
    errors: list[dict] | None = Field(None, description="validation errors: [{loc, msg, type}]")


class ModelInfo(BaseModel):
    """The classifier the cloud is using (``GET /v1/model``): an edge can check that its encoder matches."""

    version: str = Field(description="kind + hash of the model file; recorded with every prediction")
    kind: str
    latent_dim: int = Field(description="the latent length every clip must have")
    encoder_hash: str = Field(description="hash of the encoder whose latents the classifier was fitted on")
    labels: list[str]


def parse_mqtt_url(url: str) -> tuple[str, int, bool]:
    """``mqtt://host[:1883]`` or ``mqtts://host[:8883]`` -> ``(host, port, tls)``."""
    parsed = urlparse(url if "://" in url else f"mqtt://{url}")
    if parsed.scheme not in {"mqtt", "mqtts", "tcp"} or not parsed.hostname:
        raise ConfigError(f"bad MQTT URL {url!r}: use mqtt://HOST[:PORT] (credentials go in TINYACT_MQTT_USERNAME/PASSWORD)")
    if parsed.username or parsed.password:
        raise ConfigError("put MQTT credentials in TINYACT_MQTT_USERNAME / TINYACT_MQTT_PASSWORD, not in the URL")
    tls = parsed.scheme == "mqtts"
    return parsed.hostname, parsed.port or (8883 if tls else 1883), tls


def configure_mqtt_client(client, tls: bool, username: str | None = None, password: str | None = None) -> None:
    """Reconnect backoff, credentials and TLS for a paho client: the same for the cloud's bridge and the edge's
    transport. Credentials come from the caller (each side reads its config and environment; never a URL or
    a config file): :func:`tinyact.cloud.broker.cloud_credentials`, :meth:`tinyact.edge.config.EdgeConfig.mqtt_credentials`."""
    client.reconnect_delay_set(1, 30)
    if username:
        client.username_pw_set(username, password)
    if tls:
        client.tls_set()
