"""Cloud load benchmark: req/s, clips/s and p50/p95/p99 latency of ``POST /v1/clips``.

    python benchmarks/cloud_load.py                  # full: SQLite + PostgreSQL, svm/rf/xgboost/dt/logreg
    python benchmarks/cloud_load.py --quick          # seconds: SQLite, one small classifier (used by the tests)
    python benchmarks/cloud_load.py --json docs/results/cloud_load.json

The service runs in its own process (``tinyact cloud serve`` through ``serve_in_background(mode="process")``)
and this process drives it with many simulated devices, each with its own key and keep-alive connection:

* closed loop: C devices send back-to-back requests of 1 or 64 clips for ``--seconds`` -> throughput;
* open loop: single-clip requests at a fixed rate (default 200/s, evenly spaced) -> latency at that load,
  measured from each request's scheduled send time (so a stalled server cannot hide its queueing).

Both with micro-batching on (2 ms window) and off, for every classifier (swapped in through the admin API)
and database. Each row also reports the service's own CPU use (user + system seconds of its process tree,
from /proc): ``clips/CPU-s`` is clips stored per second of service CPU, and ``server cores`` the cores it kept
busy, a figure that holds when other programs share the machine and the wall-clock rates do not; ``load``
is the machine's 1-minute load average when the row started. Latents are 1024-d float16 (the edge's default encoding); classifiers are fitted on generated
latents of 10 classes (`benchmarks/cloud_fixtures.py`), so their cost per clip is that of real ones of the same
size, not their accuracy. The client is a minimal HTTP/1.1 client on asyncio streams, not httpx: on a 2-core
machine every millisecond the load generator spends is taken from the server, and httpx costs several
times more CPU per request.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.cloud_fixtures import fit_toy_classifier, postgres_base_url, postgres_schema, toy_latents  # noqa: E402
from benchmarks.common import (  # noqa: E402
    machine_info,
    markdown_table,
    pin_self_away_from_cpu0,
    pin_tree,
    print_table,
    save_results,
    tree_cpu_seconds,
)
from tinyact.cloud.server import serve_in_background  # noqa: E402
from tinyact.wire import encode_latent  # noqa: E402

ADMIN = "bench-admin-token"


# ---- a lean HTTP/1.1 client -------------------------------------------------------------------------------
class Connection:
    """One keep-alive connection; ``post`` sends a JSON body and returns (status, body)."""

    def __init__(self, host: str, port: int, key: str) -> None:
        self.host, self.port = host, port
        self.head = (f"Host: {host}:{port}\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\n").encode()
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        assert self.reader is not None and self.writer is not None
        self.writer.write(b"POST %s HTTP/1.1\r\n%sContent-Length: %d\r\n\r\n" % (path.encode(), self.head, len(body)) + body)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        data = await self.reader.readexactly(length)
        return status, data

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


class Bodies:
    """Request bodies with fresh clip ids (every request stores new rows), from a pool of encoded latents."""

    def __init__(self, latent_dim: int, n_labels: int, pool: int = 256) -> None:
        x = toy_latents(np.arange(pool) % n_labels, latent_dim, n_labels, noise=0.5)
        self.latents = [json.dumps(encode_latent(v, "float16").model_dump(exclude_none=True)) for v in x]
        self.captured = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
        self.i = 0

    def make(self, clips: int) -> bytes:
        parts = []
        for _ in range(clips):
            self.i += 1
            parts.append(
                f'{{"clip_id":"{uuid.uuid4()}","camera_id":"cam-{self.i % 4}","captured_at":"{self.captured}",'
                f'"latent":{self.latents[self.i % len(self.latents)]}}}'
            )
        return ('{"clips":[' + ",".join(parts) + "]}").encode()


def summarise(latencies: list[float], elapsed: float, requests: int, clips: int, errors: int) -> dict:
    ms = sorted(v * 1000 for v in latencies) or [float("nan")]

    def pct(q: float) -> float:
        return ms[min(len(ms) - 1, int(q * len(ms)))]

    return {
        "requests": requests, "errors": errors, "seconds": round(elapsed, 2),
        "req_per_s": requests / elapsed, "clips_per_s": clips / elapsed,
        "p50_ms": pct(0.50), "p95_ms": pct(0.95), "p99_ms": pct(0.99), "p999_ms": pct(0.999), "max_ms": ms[-1],
        "mean_ms": statistics.fmean(ms),
    }


async def closed_loop(url: str, keys: list[str], bodies: Bodies, clips: int, concurrency: int, seconds: float) -> dict:
    """``concurrency`` devices posting back-to-back for ``seconds`` (after a short warm-up)."""
    host, port = url.split("//")[1].split(":")
    connections = [Connection(host, int(port), keys[i % len(keys)]) for i in range(concurrency)]
    await asyncio.gather(*(c.open() for c in connections))
    latencies: list[float] = []
    counts = {"requests": 0, "errors": 0}
    measuring = False
    stop_at = time.perf_counter() + 0.5 + seconds

    async def device(connection: Connection) -> None:
        while time.perf_counter() < stop_at:
            body = bodies.make(clips)
            start = time.perf_counter()
            status, _ = await connection.post("/v1/clips", body)
            if measuring:
                latencies.append(time.perf_counter() - start)
                counts["requests"] += 1
                counts["errors"] += status != 200

    async def clock() -> float:
        nonlocal measuring
        await asyncio.sleep(0.5)  # warm-up: connections, caches, the first batches
        measuring = True
        return time.perf_counter()

    tasks = [asyncio.create_task(device(c)) for c in connections]
    started = await clock()
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - started
    for c in connections:
        c.close()
    good = counts["requests"] - counts["errors"]
    return summarise(latencies, elapsed, counts["requests"], good * clips, counts["errors"])


async def open_loop(url: str, keys: list[str], bodies: Bodies, rate: float, seconds: float, pool: int = 64,
                    warmup: float = 1.0) -> dict:
    """Single-clip requests at ``rate``/s, evenly spaced; latency from each request's scheduled time.

    The first ``warmup`` seconds of requests are sent at the same rate but not measured: each of the ``pool``
    connections' first requests take 15-40 ms (cold code paths on both sides), which is start-up, not load.
    """
    host, port = url.split("//")[1].split(":")
    idle: asyncio.Queue[Connection] = asyncio.Queue()
    connections = [Connection(host, int(port), keys[i % len(keys)]) for i in range(pool)]
    await asyncio.gather(*(c.open() for c in connections))
    for c in connections:
        idle.put_nowait(c)
    latencies: list[float] = []
    done_at: list[float] = []
    errors = 0
    n = int(rate * seconds)
    n_warm = int(rate * warmup)
    start = time.perf_counter() + 0.2 + warmup  # the measured requests start here

    async def one(i: int) -> None:
        nonlocal errors
        due = start + i / rate
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        body = bodies.make(1)
        connection = await idle.get()
        try:
            status, _ = await connection.post("/v1/clips", body)
        finally:
            idle.put_nowait(connection)
        if i < 0:  # warm-up
            return
        done_at.append(time.perf_counter())
        latencies.append(done_at[-1] - due)
        errors += status != 200

    warm = [asyncio.create_task(one(i)) for i in range(-n_warm, 0)]
    tasks = [asyncio.create_task(one(i)) for i in range(n)]
    # A server that cannot keep up would make the run last as long as its backlog: stop after 3× the
    # planned time and count what is still open as failed, with its wait so far as a lower bound.
    done, pending = await asyncio.wait(tasks, timeout=3 * seconds + 5)
    now = time.perf_counter()
    for task in [*pending, *warm]:
        task.cancel()
    latencies += [now - (start + i / rate) for i, task in enumerate(tasks) if task in pending]
    elapsed = (max(done_at) if done_at and not pending else now) - start
    for c in connections:
        c.close()
    failed = errors + len(pending)
    result = summarise(latencies, max(elapsed, 1e-9), len(done), len(done) - errors, failed)
    result["unfinished"] = len(pending)
    return result


# ---- the benchmark ----------------------------------------------------------------------------------------
def _per_cpu(result: dict) -> str:
    value = result["clips_per_server_cpu_s"]
    return "-" if value != value else f"{value:.0f}"  # NaN: thread mode (no separate process to measure)


def measure(run, pid: int | None) -> dict:
    """Run a load coroutine factory; add the service's CPU use and the machine's load average to its result."""
    before, load = tree_cpu_seconds(pid), os.getloadavg()[0]
    result = asyncio.run(run())
    cpu = tree_cpu_seconds(pid) - before
    good_clips = result["clips_per_s"] * result["seconds"]
    result["server_cpu_s"] = cpu
    result["clips_per_server_cpu_s"] = good_clips / cpu if cpu > 0 else float("nan")
    result["load_avg"] = load
    return result


def swap(url: str, path: Path) -> str:
    response = httpx.post(f"{url}/v1/admin/model", json={"path": str(path), "allow_encoder_change": True},
                          headers={"Authorization": f"Bearer {ADMIN}"}, timeout=300)
    response.raise_for_status()
    return response.json()["version"]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="seconds: SQLite, one small classifier (for the tests)")
    parser.add_argument("--db", default="sqlite,postgres", help="sqlite and/or postgres (skipped if it does not answer)")
    parser.add_argument("--classifiers", default="logreg,svm,rf,xgboost,dt")
    parser.add_argument("--latent-dim", type=int, default=1024)
    parser.add_argument("--labels", type=int, default=10)
    parser.add_argument("--per-class", type=int, default=100, help="training latents per class")
    parser.add_argument("--seconds", type=float, default=5.0, help="measured time per closed-loop cell")
    parser.add_argument("--single-concurrency", type=int, default=32, help="devices posting 1-clip requests")
    parser.add_argument("--batch-concurrency", type=int, default=8, help="devices posting 64-clip requests")
    parser.add_argument("--batch-clips", type=int, default=64)
    parser.add_argument("--rate", type=float, default=200.0, help="open-loop single-clip requests per second")
    parser.add_argument("--rate-seconds", type=float, default=10.0)
    parser.add_argument("--devices", type=int, default=32, help="registered simulated devices")
    parser.add_argument("--workers", type=int, default=1, help="service worker processes")
    parser.add_argument("--mode", choices=["process", "thread"], default="process",
                        help="service in its own process (default), or in a thread of this one (--quick: checks the script only)")
    parser.add_argument("--batching", default="on,off", help="micro-batching settings to run: on and/or off")
    parser.add_argument("--open-only", action="store_true", help="only the open-loop (fixed-rate latency) cells")
    parser.add_argument("--pin", action="store_true",
                        help="Linux: service on CPU 0, this load generator on the other CPUs (as devices on other machines)")
    parser.add_argument("--json", type=Path, default=None, help="also write results here")
    args = parser.parse_args(argv)
    pinned = args.pin and args.mode == "process" and pin_self_away_from_cpu0()
    if args.quick:
        args.db, args.classifiers, args.latent_dim, args.labels, args.per_class = "sqlite", "logreg", 64, 4, 20
        args.seconds, args.single_concurrency, args.batch_concurrency, args.batch_clips = 0.7, 8, 2, 16
        args.rate, args.rate_seconds, args.devices, args.mode = 50.0, 0.7, 4, "thread"

    machine = machine_info()
    print(machine)
    work = Path(tempfile.mkdtemp(prefix="tinyact-cloud-load-"))
    kinds = [k.strip() for k in args.classifiers.split(",") if k.strip()]
    labels = [f"action-{i}" for i in range(args.labels)]
    models = {}
    for kind in kinds:
        start = time.perf_counter()
        fit_toy_classifier(work / kind, kind=kind, labels=labels, latent_dim=args.latent_dim, per_class=args.per_class)
        models[kind] = work / kind
        print(f"fitted {kind} in {time.perf_counter() - start:.1f} s")
    bodies = Bodies(args.latent_dim, args.labels)
    closed_cells = () if args.open_only else ((1, args.single_concurrency), (args.batch_clips, args.batch_concurrency))
    # This process is the load generator, not the system under test: keep its own full GC passes (tens of ms
    # with the fitted models in memory) out of the measured latencies.
    gc.collect()
    gc.freeze()
    throughput_cols = ["db", "classifier", "batching", "clips/req", "devices", "req/s", "clips/s", "p50 ms", "p95 ms",
                       "p99 ms", "errors", "clips/CPU-s", "load"]
    rate_cols = ["db", "classifier", "batching", "target req/s", "req/s", "p50 ms", "p95 ms", "p99 ms", "errors",
                 "server cores", "load"]
    throughput, rated, raw = [], [], []
    notes = []
    try:
        for db in [d.strip() for d in args.db.split(",") if d.strip()]:
            with ExitStack() as stack:
                base: str | None = None  # PostgreSQL's server URL; None: SQLite
                if db == "postgres":
                    base, why = postgres_base_url()
                    if base is None:
                        notes.append(f"PostgreSQL skipped: {why}")
                        print(notes[-1])
                        continue
                elif db != "sqlite":
                    raise SystemExit(f"unknown --db {db!r}")
                for batching in [b.strip() for b in args.batching.split(",") if b.strip()]:
                    window = {"on": 2.0, "off": 0.0}[batching]
                    extra = {"workers": args.workers} if args.mode == "process" else {}
                    # A fresh database per run: a SQLite file, or a PostgreSQL schema dropped with the stack.
                    url = (f"sqlite:///{work / f'{db}-{batching}.db'}" if base is None
                           else stack.enter_context(postgres_schema(base)))
                    with serve_in_background(
                        models[kinds[0]], url, admin_token=ADMIN, mode=args.mode,
                        batch_window_ms=window, rate_limit_per_s=0, log_level="warning", **extra,
                    ) as cloud:
                        keys = [cloud.add_device(f"dev-{i}") for i in range(args.devices)]
                        pid = cloud.process.pid if cloud.process is not None else None
                        if pinned and pid is not None:
                            pin_tree(pid, {0})
                        for kind in kinds:
                            swap(cloud.url, models[kind])
                            for clips, concurrency in closed_cells:
                                result = measure(lambda c=clips, n=concurrency, url=cloud.url, k=keys: closed_loop(
                                    url, k, bodies, c, n, args.seconds), pid)
                                raw.append({"mode": "closed", "db": db, "classifier": kind, "batching": batching,
                                            "clips_per_request": clips, "devices": concurrency, **result})
                                throughput.append([db, kind, batching, clips, concurrency, f"{result['req_per_s']:.0f}",
                                                   f"{result['clips_per_s']:.0f}", f"{result['p50_ms']:.1f}",
                                                   f"{result['p95_ms']:.1f}", f"{result['p99_ms']:.1f}", result["errors"],
                                                   _per_cpu(result), f"{result['load_avg']:.1f}"])
                                print(throughput[-1])
                            result = measure(lambda url=cloud.url, k=keys: open_loop(url, k, bodies, args.rate, args.rate_seconds), pid)
                            raw.append({"mode": "open", "db": db, "classifier": kind, "batching": batching,
                                        "target_req_per_s": args.rate, **result})
                            rated.append([db, kind, batching, f"{args.rate:.0f}", f"{result['req_per_s']:.0f}",
                                          f"{result['p50_ms']:.1f}", f"{result['p95_ms']:.1f}", f"{result['p99_ms']:.1f}",
                                          result["errors"], f"{result['server_cpu_s'] / max(result['seconds'], 1e-9):.2f}",
                                          f"{result['load_avg']:.1f}"])
                            print(rated[-1])
    finally:
        shutil.rmtree(work, ignore_errors=True)

    # Micro-batching gain: clips/s with the window on over off, per db, classifier and request size.
    gain_cols = ["db", "classifier", "clips/req", "clips/s on", "clips/s off", "× gain"]
    gains = []
    for row in raw:
        if row["mode"] == "closed" and row["batching"] == "on":
            off = next((r for r in raw if r["mode"] == "closed" and r["batching"] == "off" and r["db"] == row["db"]
                       and r["classifier"] == row["classifier"] and r["clips_per_request"] == row["clips_per_request"]), None)
            if off is None:  # --batching on only
                continue
            gains.append([row["db"], row["classifier"], row["clips_per_request"], f"{row['clips_per_s']:.0f}",
                          f"{off['clips_per_s']:.0f}", f"{row['clips_per_s'] / max(off['clips_per_s'], 1e-9):.2f}"])
    print_table("closed loop: devices posting back-to-back", throughput_cols, throughput)
    print_table("open loop: single-clip requests at a fixed rate, latency from the scheduled send time", rate_cols, rated)
    print_table("micro-batching gain (clips/s, window 2 ms vs off)", gain_cols, gains)
    for note in notes:
        print(note)
    print(markdown_table(throughput_cols, throughput))
    print()
    print(markdown_table(rate_cols, rated))
    print()
    print(markdown_table(gain_cols, gains))
    result = {"throughput": {"columns": throughput_cols, "rows": throughput},
              "open_loop": {"columns": rate_cols, "rows": rated},
              "batching_gain": {"columns": gain_cols, "rows": gains},
              "raw": raw, "notes": notes, "settings": vars(args) | {"json": str(args.json), "pinned": pinned}}
    save_results(args.json, result)
    return result


if __name__ == "__main__":
    main()
