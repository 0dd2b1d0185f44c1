"""Per-device MQTT logins and ACLs (``tinyact cloud broker-config``) against a Mosquitto started per test on a
free port with the generated files, and the edge's refusal to trust results it cannot tie to a clip it sent.
Skipped with the reason when the ``mosquitto`` binary is missing."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from pydantic import ValidationError

from benchmarks.cloud_fixtures import clip_message, fit_toy_classifier, toy_latents
from tinyact.cloud.broker import CLOUD_ACCOUNT, derive_password, write_broker_config
from tinyact.edge.store import EdgeStore
from tinyact.edge.transports import MqttTransport, outbox_camera
from tinyact.wire import mqtt_clip_topic, mqtt_error_topic, mqtt_result_topic

SECRET = "test-secret-" + "x" * 24  # a test value, not a deployment's secret
DEVICES = ["edge-a", "edge-b"]
DIM = 16
LABELS = ("walking", "running", "waving")

pytestmark = pytest.mark.skipif(shutil.which("mosquitto") is None, reason="the mosquitto binary is not installed")


def wait_until(condition, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


@dataclass
class Broker:
    """A running Mosquitto: its port and process, and how to rewrite its files (as after `device revoke`)."""

    port: int
    process: subprocess.Popen
    folder: Path
    run_as: str | None

    def rewrite(self, devices: list[str]) -> None:
        """`tinyact cloud broker-config` again for ``devices``, then SIGHUP (the documented reload)."""
        write_broker_config(self.folder, devices, SECRET, listen=f"127.0.0.1:{self.port}", run_as=self.run_as)
        self.process.send_signal(signal.SIGHUP)


@pytest.fixture
def broker(tmp_path):
    """A Mosquitto with the generated mosquitto.conf / passwd / acl on a free port, killed at the end."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    run_as = "root" if os.geteuid() == 0 else None  # as root, mosquitto would switch to a user that cannot read tmp
    files = write_broker_config(tmp_path / "broker", DEVICES, SECRET, listen=f"127.0.0.1:{port}", run_as=run_as)
    log = open(tmp_path / "mosquitto.log", "w")  # noqa: SIM115 - closed below
    process = subprocess.Popen(["mosquitto", "-c", str(files.conf)], stdout=log, stderr=subprocess.STDOUT)
    try:
        def accepting() -> bool:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return True
            except OSError:
                return process.poll() is not None  # it exited: stop waiting, fail below
        wait_until(accepting)
        if process.poll() is not None:
            pytest.fail(f"mosquitto exited: {(tmp_path / 'mosquitto.log').read_text()}")
        yield Broker(port, process, files.conf.parent, run_as)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


class Client:
    """A paho client logged in as ``user`` (``None``: anonymous) collecting messages into a queue."""

    def __init__(self, port: int, user: str | None, password: str | None = None) -> None:
        self.messages: queue.Queue = queue.Queue()
        self.connack: queue.Queue = queue.Queue()
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"test-{uuid.uuid4().hex[:8]}")
        if user is not None:
            role = "cloud" if user == CLOUD_ACCOUNT else "device"
            self.client.username_pw_set(user, password or derive_password(SECRET, user, role))
        self.client.on_connect = lambda c, u, f, reason, p: self.connack.put(reason)
        self.client.on_message = lambda c, u, m: self.messages.put((m.topic, m.payload))
        subscribed: queue.Queue = queue.Queue()
        self.client.on_subscribe = lambda *args: subscribed.put(True)
        self._subscribed = subscribed
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self.reason = self.connack.get(timeout=10)

    def subscribe(self, *topics: str) -> None:
        for topic in topics:
            self.client.subscribe(topic, qos=1)
            self._subscribed.get(timeout=10)

    def publish(self, topic: str, payload: str | bytes, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(timeout=10)

    def received(self, wait: float = 0.5) -> list[tuple[str, bytes]]:
        out = []
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            with contextlib.suppress(queue.Empty):
                out.append(self.messages.get(timeout=0.05))
        return out

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def result_json(clip_id: str, camera: str, device: str = "edge-a", label: str = "waving") -> str:
    return json.dumps({
        "clip_id": clip_id, "camera_id": camera, "captured_at": "2026-01-01T00:00:00Z", "label": label,
        "score": 0.9, "top5": [{"label": label, "score": 0.9}], "model_version": "forged", "device_id": device})


def pending_clip(store: EdgeStore, camera: str = "cam-1") -> dict:
    """Put one clip in the store's outbox, as the agent does before sending; returns its message."""
    body = clip_message(toy_latents([0], DIM, len(LABELS), noise=0.3)[0], camera_id=camera)
    store.enqueue([(body["clip_id"], camera, datetime.now(UTC), 1.0, json.dumps(body))])
    return body


def edge_transport(port: int, store: EdgeStore, device: str = "edge-a") -> MqttTransport:
    transport = MqttTransport(
        f"mqtt://127.0.0.1:{port}", device, store.record_results,
        pending_camera=lambda clip_id: outbox_camera(store, clip_id), on_rejected=store.reject,
        username=device, password=derive_password(SECRET, device))
    assert transport.connected.wait(10), "the edge could not log in to the broker"
    return transport


def test_broker_config_files(tmp_path):
    files = write_broker_config(tmp_path, DEVICES, SECRET, listen="0.0.0.0:1884")
    conf = files.conf.read_text()
    assert "allow_anonymous false" in conf and "listener 1884 0.0.0.0" in conf
    assert f"password_file {files.passwd}" in conf and f"acl_file {files.acl}" in conf
    assert files.passwd.stat().st_mode & 0o077 == 0  # hashes only, and still not for everyone to read
    entries = dict(line.split(":", 1) for line in files.passwd.read_text().splitlines())
    assert sorted(entries) == sorted([*DEVICES, CLOUD_ACCOUNT])
    for user, entry in entries.items():  # Mosquitto's $7$ format: PBKDF2-SHA512 of the derived password
        _, seven, iterations, salt, digest = entry.split("$")
        password = derive_password(SECRET, user, "cloud" if user == CLOUD_ACCOUNT else "device")
        assert seven == "7" and password not in files.passwd.read_text()
        assert hashlib.pbkdf2_hmac("sha512", password.encode(), base64.b64decode(salt), int(iterations)) == \
            base64.b64decode(digest)
    acl = files.acl.read_text()
    assert "pattern write tinyact/%u/+/clip" in acl and "pattern read tinyact/%u/+/result" in acl
    assert "pattern read tinyact/%u/+/error" in acl and "readwrite" not in acl
    assert f"user {CLOUD_ACCOUNT}\ntopic read tinyact/+/+/clip\ntopic write tinyact/+/+/result" in acl
    assert derive_password(SECRET, "edge-a") != derive_password(SECRET, "edge-b") != derive_password("other" * 4, "edge-b")
    with pytest.raises(Exception, match="cloud's MQTT account"):
        write_broker_config(tmp_path, [CLOUD_ACCOUNT], SECRET)


def test_anonymous_and_wrong_logins_are_refused(broker):
    for user, password in [(None, None), ("edge-a", "wrong"), ("edge-a", derive_password(SECRET, "edge-b")),
                           ("stranger", derive_password(SECRET, "stranger"))]:
        client = Client(broker.port, user, password)
        assert client.reason.is_failure, f"{user!r} logged in"
        client.close()
    ok = Client(broker.port, "edge-a")
    assert not ok.reason.is_failure
    ok.close()


def test_a_device_cannot_publish_as_another_nor_read_its_results(broker):
    cloud = Client(broker.port, CLOUD_ACCOUNT)
    a, b = Client(broker.port, "edge-a"), Client(broker.port, "edge-b")
    try:
        cloud.subscribe("$share/tinyact-cloud/tinyact/+/+/clip")
        a.subscribe("tinyact/#", mqtt_result_topic("edge-b", "+"), mqtt_error_topic("edge-b", "+"))
        b.subscribe(mqtt_result_topic("edge-b", "+"))
        a.publish(mqtt_clip_topic("edge-a", "cam-1"), "a as a")
        a.publish(mqtt_clip_topic("edge-b", "cam-1"), "a as b")  # refused by the broker (no error in MQTT 3.1.1)
        assert cloud.received() == [(mqtt_clip_topic("edge-a", "cam-1"), b"a as a")]
        cloud.publish(mqtt_result_topic("edge-b", "cam-1"), "for b", retain=True)
        cloud.publish(mqtt_error_topic("edge-b", "cam-1"), "b refused")
        cloud.publish(mqtt_result_topic("edge-a", "cam-1"), "for a")
        a.publish(mqtt_result_topic("edge-b", "cam-1"), "forged by a", retain=True)  # only the cloud writes results
        assert a.received() == [(mqtt_result_topic("edge-a", "cam-1"), b"for a")]
        assert b.received() == [(mqtt_result_topic("edge-b", "cam-1"), b"for b")]
        late = Client(broker.port, "edge-a")  # a retained result does not leak to a later subscriber either
        late.subscribe(mqtt_result_topic("edge-b", "+"), "tinyact/+/+/result")
        assert late.received() == []
        late.close()
    finally:
        for client in (cloud, a, b):
            client.close()


def test_a_revoked_device_is_disconnected_on_reload(broker):
    b = Client(broker.port, "edge-b")
    disconnected: queue.Queue = queue.Queue()
    b.client.on_disconnect = lambda *args: disconnected.put(True)
    try:
        broker.rewrite(["edge-a"])  # edge-b revoked: out of passwd
        assert disconnected.get(timeout=10)
        assert b.connack.get(timeout=10).is_failure  # paho reconnects, and is refused
        a = Client(broker.port, "edge-a")
        assert not a.reason.is_failure
        a.close()
    finally:
        b.close()


def test_forged_results_cannot_take_a_clip_out_of_the_outbox(broker, tmp_path):
    store = EdgeStore(tmp_path / "edge.db")
    sent = pending_clip(store, "cam-1")
    transport = edge_transport(broker.port, store)
    b, cloud = Client(broker.port, "edge-b"), Client(broker.port, CLOUD_ACCOUNT)
    try:
        # Another device's account forges a result for the pending clip: the broker drops it.
        b.publish(mqtt_result_topic("edge-a", "cam-1"), result_json(sent["clip_id"], "cam-1"))
        # On the trusted topic: a clip never sent (with a new camera name), a camera that does not match the
        # clip's, a body naming another device: ignored, no row added, the clip stays pending.
        never_sent = str(uuid.uuid4())
        cloud.publish(mqtt_result_topic("edge-a", "cam-9"), result_json(never_sent, "cam-9"))
        cloud.publish(mqtt_result_topic("edge-a", "cam-2"), result_json(sent["clip_id"], "cam-2"))
        cloud.publish(mqtt_result_topic("edge-a", "cam-1"), result_json(sent["clip_id"], "cam-2"))
        cloud.publish(mqtt_result_topic("edge-a", "cam-1"), result_json(sent["clip_id"], "cam-1", device="edge-b"))
        cloud.publish(mqtt_error_topic("edge-a", "cam-1"), json.dumps({"clip_id": never_sent, "error": "bad_latent"}))
        assert wait_until(lambda: sum(transport.ignored.values()) == 5), transport.ignored
        assert transport.ignored == {"not_pending": 2, "camera_mismatch": 2, "device_mismatch": 1}
        assert store.pending_ids() == [sent["clip_id"]]
        assert store.counts()["results"] == 0 and store.counts()["rejected"] == 0
        assert [row["camera_id"] for row in store.recent()] == ["cam-1"]
        # The genuine result (the cloud's account, the clip's own topic and camera) is applied.
        cloud.publish(mqtt_result_topic("edge-a", "cam-1"), result_json(sent["clip_id"], "cam-1", label="running"))
        assert wait_until(lambda: store.pending_ids() == [])
        assert store.counts()["delivered"] == 1 and store.recent()[0]["label"] == "running"
    finally:
        transport.close()
        b.close()
        cloud.close()
        store.close()


def test_a_refusal_on_the_error_topic_marks_the_clip_rejected(broker, tmp_path, monkeypatch):
    from tinyact.cloud.server import serve_in_background

    monkeypatch.setenv("TINYACT_MQTT_SECRET", SECRET)  # the service logs in as tinyact-cloud with it
    monkeypatch.delenv("TINYACT_MQTT_USERNAME", raising=False)
    monkeypatch.delenv("TINYACT_MQTT_PASSWORD", raising=False)
    model = fit_toy_classifier(tmp_path / "clf", labels=LABELS, latent_dim=DIM, per_class=10).path
    store = EdgeStore(tmp_path / "edge.db")
    with serve_in_background(model, tmp_path / "cloud.db", mqtt=f"mqtt://127.0.0.1:{broker.port}") as cloud:
        cloud.add_device("edge-a")
        transport = edge_transport(broker.port, store)
        try:
            good = pending_clip(store, "cam-1")
            naive = pending_clip(store, "cam-2")  # captured_at without a time zone: refused for good
            naive["captured_at"] = "2026-01-01T00:00:00"
            short = pending_clip(store, "cam-1")  # wrong latent size: the cloud's state, retried later
            short["latent"] = [1.0, 2.0]
            messages = [json.dumps(good), json.dumps(naive), json.dumps(short)]
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and (store.counts()["rejected"] < 1 or store.counts()["results"] < 1):
                transport.send(messages)  # republished until the answers are in (as the agent does)
                wait_until(lambda: store.counts()["rejected"] == 1 and store.counts()["results"] == 1, timeout=3)
            counts = store.counts()
            assert counts["rejected"] == 1 and counts["results"] == 1, counts
            assert store.pending_ids() == [short["clip_id"]]  # transient refusal: still waiting
            rejected = [r for r in store.recent() if r["clip_id"] == naive["clip_id"]][0]
            assert rejected["state"] == "rejected"
        finally:
            transport.close()
            store.close()


def test_edge_config_mqtt_credentials(tmp_path, monkeypatch):
    from tinyact.edge.config import EdgeConfig

    monkeypatch.delenv("TINYACT_MQTT_USERNAME", raising=False)
    monkeypatch.delenv("TINYACT_MQTT_PASSWORD", raising=False)
    base = {"device_id": "edge-a", "encoder": {"checkpoint": "m.pt"}, "cameras": [{"id": "c", "source": "v.mp4"}],
            "transport": {"kind": "mqtt", "mqtt_url": "mqtt://127.0.0.1"}, "data_dir": str(tmp_path)}
    assert EdgeConfig.model_validate(base).mqtt_credentials() == (None, None)  # anonymous broker
    monkeypatch.setenv("TINYACT_MQTT_PASSWORD", "pw")
    assert EdgeConfig.model_validate(base).mqtt_credentials() == ("edge-a", "pw")
    monkeypatch.delenv("TINYACT_MQTT_PASSWORD")
    (tmp_path / "pw").write_text("from-file\n")
    base["transport"] |= {"mqtt_password_file": str(tmp_path / "pw"), "mqtt_username": "other"}
    assert EdgeConfig.model_validate(base).mqtt_credentials() == ("other", "from-file")
    with pytest.raises(ValidationError, match="mqtt_password"):  # a password in the YAML is refused
        EdgeConfig.model_validate({**base, "transport": {**base["transport"], "mqtt_password": "x"}})
