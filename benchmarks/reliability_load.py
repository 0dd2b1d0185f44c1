"""Reliability parts under load: slow clients next to a device, and the dashboard on 100,000 rows
(``benchmarks/reliability.py``)."""

from __future__ import annotations

import asyncio
import base64
import json
import statistics
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from benchmarks.reliability_common import (
    ADMIN,
    DIM,
    HOST,
    Tally,
    cloud,
    good_clip,
    ms_stats,
    p99,
    row,
)


async def _slow_clients(port: int, stop: threading.Event, counts: dict[str, int], held: dict[str, list[float]],
                        trickle: int, slow_body: int, idle: int) -> None:
    async def hold(kind: str, steps: Callable[[asyncio.StreamWriter], Any]) -> None:
        start = time.monotonic()
        try:
            reader, writer = await asyncio.open_connection(HOST, port)
        except OSError:
            counts[f"{kind} refused"] = counts.get(f"{kind} refused", 0) + 1
            return
        counts[kind] = counts.get(kind, 0) + 1
        try:
            async def feed() -> None:
                async for chunk in steps(writer):
                    if stop.is_set():
                        return
                    writer.write(chunk)
                    await writer.drain()
            feeder = asyncio.ensure_future(feed())
            while not stop.is_set():
                try:
                    data = await asyncio.wait_for(reader.read(65536), 0.2)
                except TimeoutError:
                    continue
                if not data:
                    break
            feeder.cancel()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            held.setdefault(kind, []).append(time.monotonic() - start)
            writer.close()

    async def trickle_headers(_writer):
        head = f"POST /v1/clips HTTP/1.1\r\nHost: {HOST}\r\nX-Slow: ".encode()
        for i in range(10_000):
            yield head[i:i + 1] if i < len(head) else b"a"
            await asyncio.sleep(0.5)

    async def slow_upload(_writer):
        yield (f"POST /v1/admin/model HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: application/json\r\n"
               f"Content-Length: {8 << 20}\r\n\r\n").encode()
        for _ in range(10_000):
            yield b" " * 64
            await asyncio.sleep(0.5)

    async def idle_socket(_writer):
        for _ in range(10_000):
            await asyncio.sleep(1)
            if False:  # pragma: no cover - an async generator that never sends
                yield b""

    tasks = [hold("header trickle", trickle_headers) for _ in range(trickle)]
    tasks += [hold("slow body", slow_upload) for _ in range(slow_body)]
    tasks += [hold("idle socket", idle_socket) for _ in range(idle)]
    await asyncio.gather(*tasks)


def part_slow_clients(args, work: Path) -> dict[str, Any]:
    trickle, slow_body, idle = (20, 10, 100) if args.quick else (100, 50, 500)
    baseline, loaded = Tally(), Tally()
    counts: dict[str, int] = {}
    held: dict[str, list[float]] = {}
    with cloud(work) as service:
        key = service.add_device("slow-device")
        nrng = np.random.default_rng(args.seed)
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}

        def post_for(seconds: float, tally: Tally, client: httpx.Client) -> None:
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                body = json.dumps({"clips": [good_clip(nrng)]})
                start = time.perf_counter()
                try:
                    status: int | str = client.post("/v1/clips", content=body, headers=headers).status_code
                except httpx.HTTPError as error:
                    status = f"transport error: {type(error).__name__}"
                tally.add(status, time.perf_counter() - start)
                time.sleep(0.005)

        with httpx.Client(base_url=service.url, timeout=30) as client:
            post_for(max(1.0, args.seconds / 4), baseline, client)
            stop = threading.Event()
            port = int(service.url.rsplit(":", 1)[1])
            attackers = threading.Thread(target=lambda: asyncio.run(
                _slow_clients(port, stop, counts, held, trickle, slow_body, idle)), daemon=True)
            attackers.start()
            time.sleep(0.5)
            post_for(max(2.0, args.seconds * 3 / 4), loaded, client)
            healthz = client.get("/healthz").status_code
            stop.set()
            attackers.join(timeout=30)
    errors = loaded.sent - loaded.status.get(200, 0)
    closed = {k: {"connections": len(v), "median_s_open": round(statistics.median(v), 1), "max_s_open": round(max(v), 1)}
              for k, v in held.items()}
    note = (f"{trickle} header-trickling, {slow_body} slow-body (8 MiB declared, unauthenticated), {idle} idle sockets; "
            f"device errors {errors}; p99 quiet {p99(baseline.latencies)} ms; /healthz during: {healthz}")
    return {"row": row("7. slow clients (device p99 while attacked)", loaded.sent + baseline.sent,
                       loaded.n5xx + baseline.n5xx, p99_ms=p99(loaded.latencies), note=note),
            "device_errors": errors, "baseline": {**baseline.summary(), **ms_stats(baseline.latencies)},
            "loaded": {**loaded.summary(), **ms_stats(loaded.latencies)}, "connections": counts, "held": closed}


# ---- 8. dashboard on 100k rows ----------------------------------------------------------------------------
def part_dashboard(args, work: Path) -> dict[str, Any]:
    rows_wanted = 5_000 if args.quick else args.dashboard_rows
    tally = Tally()
    timings: dict[str, dict[str, Any]] = {}
    with cloud(work) as service:
        keys = [service.add_device(f"dash-{i}") for i in range(4)]
        per_request = 256
        requests_needed = (rows_wanted + per_request - 1) // per_request
        started = time.monotonic()

        def worker(index: int) -> None:
            nrng = np.random.default_rng(index)
            latents = nrng.normal(0, 1, (per_request, DIM)).astype(np.float16)
            with httpx.Client(base_url=service.url, timeout=120) as client:
                for r in range(index, requests_needed, 8):
                    base = datetime.now(UTC) - timedelta(hours=23)
                    clips = [{"clip_id": str(uuid.uuid4()), "camera_id": f"cam-{(r * per_request + j) % 200}",
                              "captured_at": (base + timedelta(seconds=(r * per_request + j) % 80_000)).isoformat(),
                              "latent": {"dtype": "float16", "data": base64.b64encode(latents[j].tobytes()).decode()}}
                             for j in range(per_request)]
                    start = time.perf_counter()
                    status = client.post("/v1/clips", content=json.dumps({"clips": clips}), headers={
                        "Authorization": f"Bearer {keys[index % 4]}", "Content-Type": "application/json"}).status_code
                    tally.add(status, time.perf_counter() - start)

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(worker, range(8)))
        fill_s = time.monotonic() - started
        from sqlalchemy import create_engine, text

        engine = create_engine(service.db_url)
        with engine.connect() as con:
            stored = con.execute(text("SELECT COUNT(*) FROM predictions")).scalar_one()
        engine.dispose()
        admin = {"Authorization": f"Bearer {ADMIN}"}
        with httpx.Client(base_url=service.url, timeout=120) as client:
            for path in ("/v1/dashboard/summary", "/v1/dashboard/latest", "/v1/dashboard/timeline?hours=24"):
                times: list[float] = []
                codes: Counter[int] = Counter()
                repeats = 5 if args.quick else 30
                for _ in range(repeats + 1):
                    start = time.perf_counter()
                    code = client.get(path, headers=admin).status_code
                    times.append(time.perf_counter() - start)
                    codes[code] += 1
                    tally.add(code)
                timings[path] = {**ms_stats(times[1:]), "status": dict(codes)}
    note = (f"{stored} rows over 200 cameras, 4 devices (filled in {fill_s:.0f} s); "
            + "; ".join(f"{p.split('?')[0].rsplit('/', 1)[1]} median {t['median_ms']} ms p99 {t['p99_ms']} ms"
                        for p, t in timings.items()))
    worst = max((t["p99_ms"] for t in timings.values() if t["p99_ms"] is not None), default=None)
    return {"row": row(f"8. dashboard on {stored:,} rows (SQLite)", tally.sent, tally.n5xx, p99_ms=worst, note=note),
            "rows": stored, "timings": timings, "fill_seconds": round(fill_s, 1), **tally.summary()}
