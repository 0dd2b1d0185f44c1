"""Send-back and ingest over MQTT against the local Mosquitto (127.0.0.1:1883); unique device names per run.
Skipped with the reason when no broker answers."""

from __future__ import annotations

import json
import queue
import time
import uuid

import httpx
import numpy as np
import paho.mqtt.client as paho
import pytest

from benchmarks.cloud_fixtures import clip_message, fit_toy_classifier, mqtt_available, toy_latents
from tinyact.cloud.server import serve_in_background
from tinyact.wire import ClipResult, mqtt_clip_topic, mqtt_result_topic

DIM = 32
LABELS = ("walking", "running", "waving", "jumping")
BROKER = "mqtt://127.0.0.1:1883"

pytestmark = pytest.mark.skipif(not mqtt_available(), reason="no MQTT broker on 127.0.0.1:1883 (start mosquitto)")


class Listener:
    """A paho client collecting messages of some topics into a queue."""

    def __init__(self, *topics: str) -> None:
        self.messages: queue.Queue = queue.Queue()
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"test-{uuid.uuid4().hex[:8]}")
        subscribed = queue.Queue()
        self.client.on_message = lambda c, u, m: m.payload and self.messages.put((m.topic, json.loads(m.payload), m.retain))
        self.client.on_subscribe = lambda *args: subscribed.put(True)
        self.client.connect("127.0.0.1", 1883)
        self.client.loop_start()
        for topic in topics:
            self.client.subscribe(topic, qos=1)
            subscribed.get(timeout=10)

    def publish(self, topic: str, payload: str) -> None:
        self.client.publish(topic, payload, qos=1).wait_for_publish(timeout=10)

    def next(self, timeout: float = 15.0):
        return self.messages.get(timeout=timeout)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def wait_for_metric(url: str, line: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if line in httpx.get(f"{url}/metrics").text.splitlines():
            return
        time.sleep(0.05)
    raise AssertionError(f"metric line {line!r} did not appear")


def latent(label: int) -> np.ndarray:
    return toy_latents([label], DIM, len(LABELS), noise=0.3, rng=np.random.default_rng())[0]


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return fit_toy_classifier(tmp_path_factory.mktemp("m") / "logreg", labels=LABELS, latent_dim=DIM, per_class=15).path


def test_results_are_published_and_clips_ingested_over_mqtt(tmp_path, model):
    device = f"edge-{uuid.uuid4().hex[:8]}"  # unique topics: other runs may share the broker
    with serve_in_background(model, tmp_path / "c.db", mqtt=BROKER, mqtt_share_group="") as cloud:
        key = cloud.add_device(device)
        listener = Listener(f"tinyact/{device}/+/result", f"tinyact/{device}/+/error")
        try:
            # 1. An HTTP post is also published to tinyact/<device>/<camera>/result (QoS 1, retained).
            response = httpx.post(f"{cloud.url}/v1/clips", json={"clips": [clip_message(latent(2), camera_id="cam-1")]},
                                  headers={"Authorization": f"Bearer {key}"})
            topic, body, _ = listener.next()
            assert topic == mqtt_result_topic(device, "cam-1")
            assert ClipResult.model_validate(body).model_dump(mode="json") == response.json()["results"][0]
            # 2. A clip published on .../clip is classified, stored, and answered on .../result.
            message = clip_message(latent(3), camera_id="cam-2")
            listener.publish(mqtt_clip_topic(device, "cam-2"), json.dumps(message))
            topic, body, _ = listener.next()
            assert topic == mqtt_result_topic(device, "cam-2")
            assert body["clip_id"] == message["clip_id"] and body["label"] == "jumping" and body["device_id"] == device
            # ... once: a repeat is answered from the database and not published again.
            listener.publish(mqtt_clip_topic(device, "cam-2"), json.dumps(message))
            wait_for_metric(cloud.url, "tinyact_clips_duplicate_total 1.0")
            page = httpx.get(f"{cloud.url}/v1/results", headers={"Authorization": f"Bearer {key}"}).json()
            assert [r["clip_id"] for r in page["results"]].count(message["clip_id"]) == 1
            # 3. Bad clips get a reason on .../error and are not stored.
            bad = {**clip_message(latent(0), camera_id="cam-2"), "latent": [1.0, 2.0]}
            listener.publish(mqtt_clip_topic(device, "cam-2"), json.dumps(bad))
            topic, body, _ = listener.next()
            assert topic == f"tinyact/{device}/cam-2/error"
            assert body["error"] == "wrong_latent_size" and body["clip_id"] == bad["clip_id"]
            wrong_camera = clip_message(latent(0), camera_id="cam-9")
            listener.publish(mqtt_clip_topic(device, "cam-2"), json.dumps(wrong_camera))
            assert listener.next()[1]["error"] == "camera_mismatch"
            listener.publish(mqtt_clip_topic(device, "cam-2"), "{not json")
            assert listener.next()[1]["error"] == "invalid_request"
            # 4. Clips of unregistered devices are dropped without an answer.
            stranger = f"edge-{uuid.uuid4().hex[:8]}"
            listener.publish(mqtt_clip_topic(stranger, "cam-1"), json.dumps(clip_message(latent(0), camera_id="cam-1")))
            wait_for_metric(cloud.url, 'tinyact_rejects_total{reason="mqtt_unknown_device"} 1.0')
            wait_for_metric(cloud.url, 'tinyact_mqtt_messages_total{direction="in",outcome="classified"} 2.0')
            assert listener.messages.empty()  # nothing else was published: no second result for the repeat
        finally:
            listener.close()
    # The last result per camera stays retained for a device that subscribes later.
    late = Listener(f"tinyact/{device}/cam-2/result")
    try:
        topic, body, retained = late.next()
        assert retained and body["clip_id"] == message["clip_id"]
    finally:
        for camera in ("cam-1", "cam-2"):  # clean the broker's retained messages
            late.client.publish(mqtt_result_topic(device, camera), b"", qos=1, retain=True).wait_for_publish(timeout=10)
        late.close()
