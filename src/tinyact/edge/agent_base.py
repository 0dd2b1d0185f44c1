"""The state every part of the edge agent shares, and how its encoder and transport are made.

:class:`tinyact.edge.agent.EdgeAgent` is put together from the parts that work on this state, one module each:
capture rounds (:mod:`~tinyact.edge.capture`), delivery (:mod:`~tinyact.edge.delivery`) and the
encoder-mismatch hold (:mod:`~tinyact.edge.hold`). Each part reaches the others only through the methods
declared abstract here.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from tinyact.edge.config import EdgeConfig
from tinyact.edge.encoder import EdgeEncoder, load_encoder
from tinyact.edge.sources import Camera
from tinyact.edge.store import EdgeStore
from tinyact.edge.streams import open_camera
from tinyact.edge.transports import CloudReader, HttpTransport, MqttTransport, Transport, outbox_camera
from tinyact.errors import ConfigError
from tinyact.wire import ModelInfo


class AgentBase(ABC):
    """The agent's configuration, store, cameras, encoder, transport and counters (see :class:`EdgeAgent`).

    ``encoder``, ``transport``, ``store`` and ``cameras`` can be passed in (tests, the demo, benchmarks);
    by default they are built from ``cfg``.
    """

    def __init__(self, cfg: EdgeConfig, *, encoder: EdgeEncoder | None = None, transport: Transport | None = None,
                 store: EdgeStore | None = None, cameras: Sequence[Camera] | None = None) -> None:
        self.cfg = cfg
        cfg.data_dir.mkdir(parents=True, exist_ok=True)
        self.store = store or EdgeStore(cfg.db_path)
        self.encoder = encoder
        self.transport = transport
        self._owned: list[Transport | CloudReader] = []  # transports this agent created (and closes); injected ones stay open
        self.cameras: list[Camera] = list(cameras) if cameras is not None else [
            open_camera(c, cfg.schedule.capture_timeout_s) for c in cfg.cameras if c.enabled]
        self.snapshot_dir = cfg.snapshot_dir
        self.snapshot_dir.mkdir(parents=True, exist_ok=True)
        self._pool = ThreadPoolExecutor(max_workers=max(1, min(len(self.cameras), 8)), thread_name_prefix="grab")
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._threads: list[threading.Thread] = []
        # Reads GET /v1/model and the results feed: a CloudReader (the HTTP transport, or one beside MQTT), or a
        # test double with only some of its methods; None when the device has no way to read them.
        self._poller: Any = None
        self._round_lock = threading.Lock()
        self._status_lock = threading.Lock()
        self.started_at: float | None = None
        self.rounds = 0
        self.overruns = 0
        self.encode_failures = 0
        self.lost_encode = 0
        self.last_round: dict[str, Any] = {}
        self.last_send_error: str | None = None
        self.model_problem: str | None = None
        self.cloud_model: ModelInfo | None = None  # the cloud's classifier as last read (GET /v1/model)
        self.encoder_hold: dict[str, Any] | None = None  # set while the cloud expects another encoder's latents
        self._last_model_check = 0.0  # time.monotonic() of the last GET /v1/model
        self._model_read_ok = False  # whether the last GET /v1/model answered
        self._probe: tuple[str, str | None] | None = None  # a held clip sent to learn whether the cloud takes them
        self.last_send_ok_at: float | None = None
        self.bytes_sent = 0
        self.clips_sent = 0
        self._last_retention = 0.0
        self._last_poll = 0.0
        self._last_status_write = 0.0

    def _ensure_encoder(self) -> EdgeEncoder:
        """The encoder, loaded from the config on first use (checking the config's frames per clip)."""
        if self.encoder is None:
            encoder = load_encoder(self.cfg.encoder)
            wanted = self.cfg.schedule.frames_per_clip
            if wanted is not None and wanted != encoder.num_frames:
                raise ConfigError(f"schedule.frames_per_clip is {wanted} but the encoder takes {encoder.num_frames}-frame "
                                  "clips; leave frames_per_clip unset to use the encoder's")
            self.encoder = encoder
        return self.encoder

    def _ensure_transport(self) -> Transport:
        """The transport, connected from the config on first use, and the reader of the cloud's model and
        results feed beside it."""
        if self.transport is None:
            t = self.cfg.transport
            if t.kind == "mqtt":
                if t.mqtt_url is None:  # the config refuses this; keeps the type checker informed
                    raise ConfigError("transport.mqtt_url is required for transport kind mqtt")
                username, password = self.cfg.mqtt_credentials()
                self.transport = MqttTransport(
                    t.mqtt_url, self.cfg.device_id, self.store.record_results,
                    pending_camera=lambda clip_id: outbox_camera(self.store, clip_id), on_rejected=self.store.reject,
                    on_held=self.hold_clips, username=username, password=password)
            else:
                self.transport = HttpTransport(self.cfg.cloud_url, self.cfg.device_key(), gzip_mode=t.gzip,
                                               timeout_s=t.timeout_s)
            self._owned.append(self.transport)
        if self._poller is None:
            if isinstance(self.transport, HttpTransport) or hasattr(self.transport, "fetch_results"):
                self._poller = self.transport
            else:  # MQTT: read missed results over HTTP when the device has a key
                try:
                    self._poller = HttpTransport(self.cfg.cloud_url, self.cfg.device_key(), timeout_s=self.cfg.transport.timeout_s)
                    self._owned.append(self._poller)
                except Exception:  # no key: MQTT's retained results and republishing cover it
                    self._poller = None
        return self.transport

    @abstractmethod
    def write_status(self, running: bool | None = None) -> None:
        """Write the status file (:class:`~tinyact.edge.agent.EdgeAgent`)."""

    @abstractmethod
    def hold_clips(self, reasons: dict[str, str]) -> int:
        """Hold clips the cloud refused for their encoder (:class:`~tinyact.edge.hold.EncoderHold`)."""

    @abstractmethod
    def recheck_cloud_model(self, force: bool = False) -> bool:
        """Read the cloud's model again while clips are held (:class:`~tinyact.edge.hold.EncoderHold`)."""
