"""Reliability part over MQTT: spoofed logins and forged clips, results and errors against a private Mosquitto
with the generated ACL (``benchmarks/reliability.py``)."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shutil
import sqlite3
import subprocess
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.reliability_common import (
    HOST,
    Skip,
    cloud,
    db_clip_ids,
    good_clip,
    norm,
    row,
)


# ---- 6. MQTT spoofing and forging -------------------------------------------------------------------------
def mosquitto_binary() -> str | None:
    return shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)


class MqttClient:
    """A paho client (``user=None``: anonymous) recording its CONNACK and the messages it receives."""

    def __init__(self, port: int, user: str | None, password: str | None) -> None:
        import paho.mqtt.client as paho

        self.messages: queue.Queue = queue.Queue()
        connack: queue.Queue = queue.Queue()
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"rel-{uuid.uuid4().hex[:8]}")
        if user is not None:
            self.client.username_pw_set(user, password)
        self.client.on_connect = lambda c, u, f, reason, p: connack.put(reason)
        self.client.on_message = lambda c, u, m: self.messages.put((m.topic, m.payload))
        self.client.connect(HOST, port)
        self.client.loop_start()
        self.connected = not connack.get(timeout=10).is_failure

    def publish(self, topic: str, payload: str | bytes, retain: bool = False) -> None:
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        with contextlib.suppress(Exception):
            info.wait_for_publish(timeout=3)

    def subscribe(self, topic: str) -> None:
        self.client.subscribe(topic, qos=1)

    def drain(self) -> list[tuple[str, bytes]]:
        out = []
        with contextlib.suppress(queue.Empty):
            while True:
                out.append(self.messages.get_nowait())
        return out

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.disconnect()
            self.client.loop_stop()


def part_mqtt(args, work: Path) -> dict[str, Any]:
    from tinyact.cloud.broker import CLOUD_ACCOUNT, MQTT_SECRET_ENV, derive_password, write_broker_config
    from tinyact.cloud.server import free_port
    from tinyact.edge.store import EdgeStore
    from tinyact.edge.transports import MqttTransport, outbox_camera
    from tinyact.wire import mqtt_clip_topic, mqtt_error_topic, mqtt_result_topic

    binary = mosquitto_binary()
    if binary is None:
        raise Skip("mosquitto is not installed (apt-get install mosquitto)")
    secret = "reliability-" + uuid.uuid4().hex  # a throw-away secret for this run's private broker
    port = free_port(HOST)
    run_as = "root" if os.geteuid() == 0 else None
    files = write_broker_config(work / "broker", ["dev-a", "dev-b"], secret, listen=f"{HOST}:{port}", run_as=run_as)
    log = open(work / "mosquitto.log", "wb")  # noqa: SIM115 - closed below
    broker = subprocess.Popen([binary, "-c", str(files.conf)], stdout=log, stderr=subprocess.STDOUT)
    attempts: Counter = Counter()
    forged: Counter = Counter()
    clients: list[MqttClient] = []
    previous_secret = os.environ.get(MQTT_SECRET_ENV)
    os.environ[MQTT_SECRET_ENV] = secret  # the cloud child logs in as tinyact-cloud with the derived password
    nrng = np.random.default_rng(args.seed)
    try:
        from benchmarks.faults import _wait_port

        _wait_port(port, 20, alive=lambda: broker.poll() is None)
        with cloud(work, mqtt=f"mqtt://{HOST}:{port}", mqtt_client_id="tinyact-cloud-reliability") as service:
            for name in ("dev-a", "dev-b"):
                service.add_device(name)
            pw = {n: derive_password(secret, n) for n in ("dev-a", "dev-b")}
            # Logins that must be refused.
            for label, user, password in [("anonymous", None, None), ("A with a wrong password", "dev-a", "wrong"),
                                          ("A with B's password", "dev-a", pw["dev-b"]),
                                          ("cloud account with a device password", CLOUD_ACCOUNT, pw["dev-a"]),
                                          ("unknown account", "stranger", derive_password(secret, "stranger"))]:
                client = MqttClient(port, user, password)
                attempts["login"] += 1
                if client.connected:
                    forged[f"login accepted: {label}"] += 1
                    clients.append(client)
                else:
                    client.close()
            a = MqttClient(port, "dev-a", pw["dev-a"])
            b_watch = MqttClient(port, "dev-b", pw["dev-b"])
            clients += [a, b_watch]
            if not (a.connected and b_watch.connected):
                raise RuntimeError("genuine devices could not log in to the private broker")
            a.subscribe("tinyact/#")
            b_watch.subscribe(mqtt_result_topic("dev-b", "+"))
            b_watch.subscribe(mqtt_error_topic("dev-b", "+"))
            # B's edge: one clip pending in its outbox, with the real transport and store.
            store = EdgeStore(work / "edge-b.db")
            pending = good_clip(nrng, camera="cam-1")
            store.enqueue([(pending["clip_id"], "cam-1", datetime.now(UTC), 1.0, json.dumps(pending))])
            transport = MqttTransport(f"mqtt://{HOST}:{port}", "dev-b", store.record_results,
                                      pending_camera=lambda cid: outbox_camera(store, cid), on_rejected=store.reject,
                                      username="dev-b", password=pw["dev-b"])
            if not transport.connected.wait(10):
                raise RuntimeError("B's edge transport could not log in")
            time.sleep(0.5)
            a.drain()
            b_watch.drain()
            genuine = good_clip(nrng, camera="cam-1")
            a.publish(mqtt_clip_topic("dev-a", "cam-1"), json.dumps(genuine))  # must get through
            deadline = time.monotonic() + max(3.0, args.seconds)
            rounds = 0
            spoofed_ids: list[str] = []
            while time.monotonic() < deadline or rounds == 0:
                rounds += 1
                spoof = good_clip(nrng, camera="cam-1")
                spoofed_ids.append(norm(spoof["clip_id"]))
                a.publish(mqtt_clip_topic("dev-b", "cam-1"), json.dumps(spoof))  # A as B
                attempts["clip published as another device"] += 1
                forged_result = json.dumps({
                    "clip_id": pending["clip_id"], "camera_id": "cam-1", "captured_at": pending["captured_at"],
                    "label": "forged", "score": 1.0, "top5": [{"label": "forged", "score": 1.0}],
                    "model_version": "forged", "device_id": "dev-b"})
                for topic in (mqtt_result_topic("dev-b", "cam-1"), mqtt_error_topic("dev-b", "cam-1"),
                              mqtt_result_topic("dev-a", "cam-1")):
                    a.publish(topic, forged_result, retain=rounds % 2 == 0)
                    attempts["forged result/error by a device"] += 1
                if rounds % 10 == 1:  # also as a stranger over a fresh anonymous connection each time
                    anon = MqttClient(port, None, None)
                    attempts["anonymous session"] += 1
                    if anon.connected:
                        anon.publish(mqtt_result_topic("dev-b", "cam-1"), forged_result)
                        anon.publish(mqtt_clip_topic("dev-b", "cam-1"), json.dumps(good_clip(nrng)))
                        forged["anonymous session accepted"] += 1
                    anon.close()
                time.sleep(0.01)
            time.sleep(2.0)
            genuine_stored = norm(genuine["clip_id"]) in set(db_clip_ids(service.db_url, "dev-a"))
            stored_b = set(db_clip_ids(service.db_url, "dev-b"))
            forged["clips stored under B from A"] = len(stored_b & set(spoofed_ids))
            seen_by_a = [t for t, _ in a.drain() if t.startswith("tinyact/dev-b/")]
            forged["B's topics readable by A"] = len(seen_by_a)
            forged["forged results delivered to B"] = sum(1 for t, p in b_watch.drain() if b"forged" in p)
            with sqlite3.connect(store.path if hasattr(store, "path") else work / "edge-b.db") as con:
                outbox_left = con.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
                state = con.execute("SELECT state, label FROM captures WHERE clip_id = ?",
                                    (pending["clip_id"],)).fetchone()
            forged["pending clip taken out of B's outbox"] = int(outbox_left == 0 or (state and state[1] == "forged"))
            transport.close() if hasattr(transport, "close") else None
    finally:
        for client in clients:
            client.close()
        if previous_secret is None:
            os.environ.pop(MQTT_SECRET_ENV, None)
        else:
            os.environ[MQTT_SECRET_ENV] = previous_secret
        broker.terminate()
        try:
            broker.wait(timeout=10)
        except subprocess.TimeoutExpired:
            broker.kill()
            broker.wait()
        log.close()
    total_forged = sum(forged.values())
    sent = sum(attempts.values())
    note = (f"genuine clip of A stored: {genuine_stored}; {rounds} rounds; "
            + ", ".join(f"{k}: {v}" for k, v in forged.items()))
    return {"row": row("6. MQTT spoofing / forging (generated ACL)", sent, forged=total_forged, note=note),
            "attempts": dict(attempts), "forged": dict(forged), "genuine_clip_stored": genuine_stored}


# ---- 7. slow clients --------------------------------------------------------------------------------------
