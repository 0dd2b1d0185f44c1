"""Fault benchmark: clips from a real edge agent to a real cloud while both (and the MQTT broker) are killed.

    python benchmarks/faults.py                         # 1,000 clips over HTTP, then over MQTT (if mosquitto exists)
    python benchmarks/faults.py --quick                 # 60+ clips, same faults (used by the tests)
    python benchmarks/faults.py --json docs/results/faults.json

Everything is a separate process: the cloud (``tinyact cloud serve``, SQLite), the agent (``tinyact edge run``,
its own SQLite outbox) with ``--cameras`` simulated cameras, and for MQTT a ``mosquitto`` broker on a free port.
While the agent captures ``--clips`` clips, at fixed fractions of them:

Each fault waits for at least 8 % of the clips after the previous one, so the run captures more than
``--clips`` when restarts are slow (a loaded machine):

* 15 %: the cloud is SIGKILLed, stays down ``--outage`` seconds, restarted on the same port and database;
* 40 %: the agent is SIGKILLed and restarted at once (same data folder: its outbox survives);
* 65 %: the cloud is SIGKILLed and restarted again;
* 80 % (MQTT only): the broker is SIGKILLed and restarted.

Then the agent is stopped (SIGTERM) and restarted with its cameras disabled until its outbox is empty
(delivery of the backlog), and both databases are compared:

* ``captured``: clips in the agent's database (written to the outbox before any send). A clip whose frames
  were in memory when the agent was SIGKILLed, before that write, never existed for the system and is not
  counted here (at most one round of clips);
* ``cloud_rows``: the device's rows in the cloud database; ``duplicates``: rows minus distinct clip ids;
* ``lost``: captured clips that are not in the cloud (and were not dropped by the outbox bound, counted
  separately as ``dropped``); ``phantoms``: cloud rows the agent never captured;
* ``results_back``: captured clips whose result reached the agent's database.

Target: 0 lost, 0 duplicated.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python benchmarks/faults.py` from the root

from benchmarks.common import console, markdown_table, print_table, save_results  # noqa: E402

DEVICE = "faults-edge"
SRC = str(Path(__file__).resolve().parents[1] / "src")


def _die_with_parent() -> None:
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)


def _spawn(args: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    full_env = dict(os.environ, PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""), TINYACT_NO_PROGRESS="1")
    full_env.update(env or {})
    return subprocess.Popen(args, stdout=open(log, "ab"), stderr=subprocess.STDOUT, env=full_env,  # noqa: SIM115
                            start_new_session=True, preexec_fn=_die_with_parent)


def _kill(process: subprocess.Popen | None, sig: int = signal.SIGKILL, timeout: float = 30.0) -> None:
    if process is None or process.poll() is not None:
        return
    process.send_signal(sig)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _wait_port(port: int, timeout: float, alive=lambda: True) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive():
            raise RuntimeError(f"the process meant to listen on {port} exited")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on port {port} after {timeout:g} s")


class Cloud:
    """``tinyact cloud serve`` as a child process that can be SIGKILLed and restarted on the same port/db."""

    def __init__(self, work: Path, model: Path, mqtt_url: str | None, db_url: str | None = None) -> None:
        from tinyact.cloud.config import CloudConfig
        from tinyact.cloud.server import free_port

        self.port = free_port()
        self.db = db_url or f"sqlite:///{work / 'cloud.db'}"
        settings: dict[str, Any] = {"model": str(model), "db": self.db, "host": "127.0.0.1", "port": self.port,
                                    "log_level": "warning"}
        if mqtt_url:
            # A fixed client id: the broker keeps the QoS 1 clips published while the cloud is down.
            settings.update(mqtt=mqtt_url, mqtt_client_id="tinyact-cloud-faults")
        self.config = work / "cloud.yaml"
        self.config.write_text(CloudConfig.from_dict(settings).to_yaml())
        self.log = work / "cloud.log"
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        import httpx

        self.process = _spawn([sys.executable, "-m", "tinyact", "cloud", "serve", "--config", str(self.config)], self.log)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the cloud exited; see {self.log}")
            try:
                if httpx.get(self.url + "/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"the cloud did not become ready; see {self.log}")

    def kill(self) -> None:
        _kill(self.process)


class Broker:
    """A ``mosquitto`` of our own on a free port, with persistence (restarts keep the queued messages it saved)."""

    def __init__(self, work: Path) -> None:
        from tinyact.cloud.server import free_port

        self.binary = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)
        self.port = free_port()
        folder = work / "mosquitto"
        folder.mkdir(exist_ok=True)
        self.conf = folder / "mosquitto.conf"
        self.conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
                             f"persistence_location {folder}/\nautosave_interval 1\nmax_queued_messages 100000\n")
        self.log = work / "mosquitto.log"
        self.url = f"mqtt://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        if self.binary is None:
            raise RuntimeError("mosquitto is not installed")
        self.process = _spawn([self.binary, "-c", str(self.conf)], self.log)
        _wait_port(self.port, 20, alive=lambda: self.process.poll() is None)

    def kill(self) -> None:
        _kill(self.process)


def make_inputs(work: Path, size: int) -> tuple[Path, Path, list[Path]]:
    """A small random 3-D autoencoder, a classifier for its 1024-d latents, and two camera files."""
    import torch

    from benchmarks.cloud_fixtures import fit_toy_classifier
    from tinyact.data.encode import encode_video
    from tinyact.edge.simulate import synthetic_frames
    from tinyact.models.autoencoder3d import VideoAutoEncoder3D
    from tinyact.models.checkpoint import save_model

    torch.manual_seed(0)
    checkpoint = work / "encoder.pt"
    encoder_hash = save_model(checkpoint, VideoAutoEncoder3D.from_preset("fast", input_size=size))
    # Fitted "on" this encoder: the cloud refuses clips of another encoder than its classifier's (409).
    model = work / "classifier"
    fit_toy_classifier(model, per_class=10, encoder_hash=encoder_hash)
    files = []
    for k in range(2):
        path = work / f"camera-{k}.mp4"
        encode_video(path, synthetic_frames(48, 64, 100, seed=k), 25)
        files.append(path)
    return checkpoint, model, files


def edge_config(work: Path, name: str, cloud: Cloud, checkpoint: Path, files: list[Path], args, mqtt_url: str | None,
                cameras_on: bool) -> Path:
    from tinyact.edge.config import (
        CameraConfig,
        EdgeConfig,
        EncoderConfig,
        OutboxConfig,
        ScheduleConfig,
        TransportConfig,
        WebConfig,
    )

    transport = TransportConfig(kind="mqtt" if mqtt_url else "http", mqtt_url=mqtt_url, timeout_s=5.0,
                                retry_base_s=0.5, retry_max_s=4.0, ack_timeout_s=6.0, results_poll_s=3.0)
    cfg = EdgeConfig(
        device_id=DEVICE, cloud_url=cloud.url, device_key_file=work / "device.key",
        encoder=EncoderConfig(checkpoint=checkpoint, threads=1),
        cameras=[CameraConfig(id=f"cam-{i}", source=str(files[i % len(files)]), enabled=cameras_on)
                 for i in range(args.cameras)],
        schedule=ScheduleConfig(interval_s=args.interval, capture_fps=8.0),
        transport=transport, outbox=OutboxConfig(max_pending=1_000_000), web=WebConfig(enabled=False),
        data_dir=work / "edge",
    )
    return cfg.save(work, name)


def _edge_counts(db: Path) -> dict[str, int]:
    if not db.exists():
        return {"captured": 0, "pending": 0, "delivered": 0}
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as con:
            captured = con.execute("SELECT COUNT(*) FROM captures").fetchone()[0]
            pending = con.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
            delivered = con.execute("SELECT COUNT(*) FROM captures WHERE state = 'delivered'").fetchone()[0]
        return {"captured": captured, "pending": pending, "delivered": delivered}
    except sqlite3.Error:  # the agent is creating the tables right now
        return {"captured": 0, "pending": 0, "delivered": 0}


def run_scenario(transport: str, args, work: Path, db_url: str | None = None) -> dict[str, Any]:
    """One run of ``args.clips`` clips with the faults of the module docstring, the cloud on ``db_url`` (default:
    SQLite in ``work``); returns the counts."""
    from tinyact.cloud.devices import add_device

    work.mkdir(parents=True, exist_ok=True)
    checkpoint, model, files = make_inputs(work, args.size)
    broker = Broker(work) if transport == "mqtt" else None
    if broker is not None:
        if broker.binary is None:
            return {"transport": transport, "skipped": "mosquitto is not installed (apt-get install mosquitto)"}
        broker.start()
    mqtt_url = broker.url if broker else None
    cloud = Cloud(work, model, mqtt_url, db_url)
    events: list[dict[str, Any]] = []
    agent: subprocess.Popen | None = None
    edge_db = work / "edge" / "edge.db"
    agent_log = work / "agent.log"
    started = time.monotonic()

    def event(what: str) -> None:
        counts = _edge_counts(edge_db)
        events.append({"t_s": round(time.monotonic() - started, 1), "event": what, **counts})
        console.print(f"  [{transport}] {events[-1]['t_s']:6.1f} s  {what:<34} captured {counts['captured']:5d}  "
                      f"pending {counts['pending']:5d}")

    def start_agent(config: Path) -> subprocess.Popen:
        return _spawn([sys.executable, "-m", "tinyact", "edge", "run", "--config", str(config), "--no-web"], agent_log)

    try:
        cloud.start()
        key_file = work / "device.key"
        key_file.write_text(add_device(cloud.db, DEVICE).key)
        run_cfg = edge_config(work, "edge.yaml", cloud, checkpoint, files, args, mqtt_url, cameras_on=True)
        drain_cfg = edge_config(work, "edge-drain.yaml", cloud, checkpoint, files, args, mqtt_url, cameras_on=False)
        agent = start_agent(run_cfg)
        event("agent started")
        plan = [(0.15, "kill cloud"), (0.40, "kill agent"), (0.65, "kill cloud")]
        if broker is not None:
            plan.append((0.80, "kill broker"))
        deadline = time.monotonic() + args.timeout
        last_fault = 0
        while True:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{args.clips} clips not captured within {args.timeout:g} s; see {agent_log}")
            if agent.poll() is not None:
                raise RuntimeError(f"the agent exited ({agent.returncode}); see {agent_log}")
            captured = _edge_counts(edge_db)["captured"]
            # Each fault at its fraction of the clips, and at least 8 % of them after the previous one (a slow
            # restart must not bunch the faults together).
            if plan and captured >= max(plan[0][0] * args.clips, last_fault + 0.08 * args.clips):
                _, what = plan.pop(0)
                if what == "kill cloud":
                    cloud.kill()
                    event("cloud SIGKILLed")
                    time.sleep(args.outage)
                    cloud.start()
                    event("cloud restarted")
                elif what == "kill agent":
                    _kill(agent)
                    event("agent SIGKILLed")
                    agent = start_agent(run_cfg)
                    event("agent restarted")
                elif what == "kill broker":
                    assert broker is not None  # the plan has this fault with MQTT only
                    broker.kill()
                    event("broker SIGKILLed")
                    time.sleep(args.outage)
                    broker.start()
                    event("broker restarted")
                last_fault = _edge_counts(edge_db)["captured"]
            if captured >= args.clips and not plan:
                break
            time.sleep(0.2)
        _kill(agent, signal.SIGTERM)
        event("agent stopped (target reached)")
        agent = start_agent(drain_cfg)
        event("agent restarted without cameras (drain)")
        drain_deadline = time.monotonic() + args.drain_timeout
        while time.monotonic() < drain_deadline:
            counts = _edge_counts(edge_db)
            if counts["pending"] == 0 and counts["delivered"] == counts["captured"]:
                break
            time.sleep(0.5)
        time.sleep(min(5.0, args.results_wait))  # results still on their way back (MQTT, results feed)
        _kill(agent, signal.SIGTERM)
        event("drained, agent stopped")
        return {"transport": transport, **count(edge_db, cloud.db), "events": events,
                "seconds": round(time.monotonic() - started, 1), "load_at_end": round(os.getloadavg()[0], 2)}
    finally:
        _kill(agent, signal.SIGTERM)
        cloud.kill()
        if broker is not None:
            broker.kill()


def count(edge_db: Path, cloud_db: str) -> dict[str, Any]:
    """Compare the agent's and the cloud's databases (see the module docstring)."""
    from sqlalchemy import create_engine, text

    with sqlite3.connect(edge_db) as con:
        edge = {row[0]: row[1] for row in con.execute("SELECT clip_id, state FROM captures")}
        with_result = con.execute("SELECT COUNT(*) FROM captures WHERE label IS NOT NULL").fetchone()[0]
        counters = dict(con.execute("SELECT name, value FROM counters").fetchall())
        pending = con.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
    engine = create_engine(cloud_db)
    with engine.connect() as db:
        rows = db.execute(text("SELECT p.clip_id FROM predictions p JOIN devices d ON d.id = p.device_id "
                               "WHERE d.name = :n"), {"n": DEVICE}).scalars().all()
    engine.dispose()
    norm = lambda c: str(c).replace("-", "").lower()  # noqa: E731 - UUIDs as stored by either side
    cloud_ids = [norm(c) for c in rows]
    edge_ids = {norm(c) for c, state in edge.items() if state != "dropped"}
    return {
        "captured": len(edge),
        "cloud_rows": len(cloud_ids),
        "duplicates": len(cloud_ids) - len(set(cloud_ids)),
        "lost": len(edge_ids - set(cloud_ids)),
        "phantoms": len(set(cloud_ids) - {norm(c) for c in edge}),
        "dropped": int(counters.get("dropped", 0)),
        "pending_at_end": pending,
        "results_back": with_result,
        "send_failures": int(counters.get("send_failures", 0)),
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="60 clips, 1 s outages (for the tests)")
    parser.add_argument("--transports", default="http,mqtt", help="http and/or mqtt (mqtt needs mosquitto)")
    parser.add_argument("--clips", type=int, default=1000)
    parser.add_argument("--cameras", type=int, default=20)
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between two clips of one camera")
    parser.add_argument("--size", type=int, default=32, help="encoder input (px); the cost of encoding is not the point")
    parser.add_argument("--outage", type=float, default=5.0, help="seconds the cloud / broker stays down")
    parser.add_argument("--timeout", type=float, default=900.0, help="give up capturing after this many seconds")
    parser.add_argument("--drain-timeout", type=float, default=180.0)
    parser.add_argument("--results-wait", type=float, default=5.0)
    parser.add_argument("--work", type=Path, default=None, help="keep the databases and logs here")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.quick:
        args.clips, args.cameras, args.outage, args.results_wait = 60, 6, 1.0, 1.0
    keep = args.work is not None
    root = args.work or Path(tempfile.mkdtemp(prefix="tinyact-faults-"))
    results: dict[str, Any] = {"settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
                               "load_at_start": os.getloadavg(), "runs": []}
    try:
        for transport in [t.strip() for t in args.transports.split(",") if t.strip()]:
            console.print(f"[bold]{transport}[/]: {args.clips} clips from {args.cameras} cameras every {args.interval:g} s")
            results["runs"].append(run_scenario(transport, args, root / transport))
    finally:
        if not keep:
            shutil.rmtree(root, ignore_errors=True)
    columns = ("transport", "captured", "cloud rows", "duplicates", "lost", "phantoms", "dropped", "results back",
               "send failures", "seconds", "load")
    rows = [(r["transport"], *(r.get(k, r.get("skipped", "")) for k in (
        "captured", "cloud_rows", "duplicates", "lost", "phantoms", "dropped", "results_back", "send_failures",
        "seconds", "load_at_end"))) for r in results["runs"]]
    print_table("Faults: cloud SIGKILLed twice, agent SIGKILLed once, broker (MQTT) SIGKILLed once", columns, rows)
    results["table_markdown"] = markdown_table(columns, rows)
    save_results(args.json, results)
    return results


if __name__ == "__main__":
    main()
