"""Prometheus metrics of the service (``GET /metrics``).

Each app gets its own registry, so several services in one process (tests) don't mix their counts. With
``--workers N`` every worker is its own process: ``tinyact cloud serve`` then sets
``PROMETHEUS_MULTIPROC_DIR`` and ``/metrics`` sums all workers (prometheus_client's multiprocess mode).
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

LATENCY_BUCKETS = (0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.25, 0.5, 1, 2.5)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048)


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


class Metrics:
    """The service's counters and histograms."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("tinyact_http_requests", "HTTP requests by route and status", ["method", "route", "status"], registry=r)
        self.latency = Histogram(
            "tinyact_http_request_duration_seconds", "Request latency by route", ["route"], buckets=LATENCY_BUCKETS, registry=r
        )
        self.clips = Counter("tinyact_clips_classified", "Clips classified and stored", ["model_version"], registry=r)
        self.duplicates = Counter("tinyact_clips_duplicate", "Repeated clips answered from the database", registry=r)
        self.rejects = Counter("tinyact_rejects", "Rejected requests and clips by reason", ["reason"], registry=r)
        self.unnamed_encoder = Counter(
            "tinyact_clips_without_encoder_hash",
            "Clips accepted without encoder_hash (older edges): their encoder cannot be checked", registry=r,
        )
        self.batch_clips = Histogram("tinyact_batch_clips", "Clips per classified micro-batch", buckets=BATCH_BUCKETS, registry=r)
        self.batch_requests = Histogram(
            "tinyact_batch_requests", "Requests per classified micro-batch", buckets=BATCH_BUCKETS, registry=r
        )
        self.classify_seconds = Histogram(
            "tinyact_classify_seconds", "predict_proba time per micro-batch", buckets=LATENCY_BUCKETS, registry=r
        )
        self.mqtt = Counter("tinyact_mqtt_messages", "MQTT messages by direction and outcome", ["direction", "outcome"], registry=r)
        self.model_info = Gauge(
            "tinyact_model_info", "The active model (value 1)", ["version", "kind"], registry=r, multiprocess_mode="liveall"
        )
        self._model_labels: set[tuple[str, str]] = set()

    def on_batch(self, requests: int, clips: int, seconds: float) -> None:
        self.batch_requests.observe(requests)
        self.batch_clips.observe(clips)
        self.classify_seconds.observe(seconds)

    def set_model(self, version: str, kind: str) -> None:
        if not multiprocess_dir():  # (multiprocess gauges cannot be cleared: the old version is set to 0)
            self.model_info.clear()
        else:
            for labels in list(self._model_labels):
                self.model_info.labels(*labels).set(0)
        self._model_labels.add((version, kind))
        self.model_info.labels(version=version, kind=kind).set(1)

    def exposition(self) -> tuple[bytes, str]:
        """The text format for ``/metrics``: this process's registry, or all workers in multiprocess mode."""
        if multiprocess_dir():
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
