"""Getting latents to the cloud and results back: HTTP (``POST /v1/clips``) or MQTT (QoS 1).

A transport takes outbox messages (``ClipIn`` JSON strings, latent already encoded) and reports what
happened in a :class:`SendOutcome`; the agent turns that into store updates (delivered, retry later with
backoff, rejected). Nothing here decides to drop a clip.

* :mod:`~tinyact.edge.transports.http`: the answer to a POST carries one result per clip, so a 200 is the
  cloud's acknowledgement; ``GET /v1/results?since=`` brings back results the device missed.
* :mod:`~tinyact.edge.transports.mqtt`: the broker's PUBACK only says the broker has the clip, so it stays in
  the outbox until its result arrives on the device's result topic (or from the results feed).

Encoder mismatch (HTTP 409 / MQTT error ``encoder_mismatch``): the cloud's classifier was fitted on another
encoder's latents. That is not the clip's fault, so it is never a rejection: the outcome lists the clips in
``held`` and the agent keeps them in the outbox, held back, until a matching classifier is active.
"""

from tinyact.edge.transports.base import CloudReader, SendOutcome, Transport
from tinyact.edge.transports.http import HttpTransport
from tinyact.edge.transports.mqtt import MqttTransport, outbox_camera

__all__ = ["CloudReader", "HttpTransport", "MqttTransport", "SendOutcome", "Transport", "outbox_camera"]
