"""What every transport shares: the :class:`SendOutcome` of a send, the :class:`Transport` the agent calls, and
the cloud's error codes that mean "later", not "never"."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from tinyact.wire import ClipResult, ModelInfo

#: 422 error codes that are about the cloud's state, not the clip: retry later instead of rejecting the clip.
RETRYABLE_422 = {"wrong_latent_size", "model_changed", "no_model", "future_timestamp"}


@dataclass
class SendOutcome:
    """What became of one send: ``delivered`` clip ids (acknowledged), ``results`` (verdicts received),
    ``retry`` ids (try again later; ``retry_after_s`` if the cloud said when), ``rejected`` ids with the reason
    (the cloud refused the clip itself: it will never be accepted), ``held`` ids with the reason (the cloud's
    classifier expects another encoder: keep them until it matches), ``error`` (why a retry is needed)."""

    delivered: list[str] = field(default_factory=list)
    results: list[ClipResult] = field(default_factory=list)
    retry: list[str] = field(default_factory=list)
    rejected: dict[str, str] = field(default_factory=dict)
    held: dict[str, str] = field(default_factory=dict)
    retry_after_s: float | None = None
    error: str | None = None
    bytes_sent: int = 0


class Transport(Protocol):
    """Sends outbox messages (``ClipIn`` JSON strings) to the cloud: :class:`~tinyact.edge.transports.http.HttpTransport`,
    :class:`~tinyact.edge.transports.mqtt.MqttTransport`, or a test double."""

    def send(self, messages: Sequence[str]) -> SendOutcome:
        """Send the messages; never raises for a cloud that is down (the outcome says ``retry``)."""
        ...

    def close(self) -> None:
        """Release the connection."""
        ...


class CloudReader(Protocol):
    """Reads the cloud over HTTP: its active classifier and the results feed (what :class:`HttpTransport`
    also does; an MQTT device uses one beside its broker connection)."""

    def model_info(self) -> ModelInfo | None:
        """The cloud's active classifier, or ``None`` if it cannot be read now."""
        ...

    def fetch_results(self, since: int, limit: int = 1000) -> tuple[list[ClipResult], int]:
        """Results after cursor ``since`` and the next cursor."""
        ...

    def close(self) -> None:
        """Release the connection."""
        ...


def clip_id_of(message: str) -> str:
    """The ``clip_id`` of a ``ClipIn`` JSON message."""
    return str(json.loads(message)["clip_id"])


def encoder_of(message: str) -> str | None:
    """The ``encoder_hash`` of a ``ClipIn`` JSON message (``None`` when it names none)."""
    value = json.loads(message).get("encoder_hash")
    return None if value is None else str(value)
