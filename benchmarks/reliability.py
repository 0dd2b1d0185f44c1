"""Reliability suite (issue 19, section 6): the cloud and the edge under hostile input and faults, on 127.0.0.1 only.

    python benchmarks/reliability.py                         # every part, --seconds 60 each
    python benchmarks/reliability.py --seconds 30 --md docs/RELIABILITY.md --json docs/results/reliability.json
    python benchmarks/reliability.py --quick                 # a few seconds per part (used by the tests)
    python benchmarks/reliability.py --parts fuzz,isolation  # some parts only

Every service is started by this script on a free port of 127.0.0.1 (``tinyact cloud serve`` child processes,
a private ``mosquitto`` with the config of ``tinyact cloud broker-config``); nothing else is contacted except
PostgreSQL at ``$TINYACT_TEST_POSTGRES`` or postgresql://postgres@127.0.0.1:5432/test (one fresh schema per
run, dropped afterwards). Parts whose service is missing (PostgreSQL, mosquitto, schemathesis) are reported as
skipped with the reason. Each part is bounded by ``--seconds`` (the SIGKILL part by a clip count derived from it).

Parts (the ``--parts`` names):

* ``schemathesis``: ``st run URL/openapi.json`` (coverage, fuzzing, stateful phases, ``--max-time`` half of
  ``--seconds`` each) with a device key, then with the admin token; requests counted from its NDJSON report.
* ``fuzz``: a seeded structured fuzz of ``POST /v1/clips`` (bad latents, huge values, wrong sizes, bad time
  stamps, bad ids, duplicates in one request and across requests, the same Idempotency-Key with two bodies,
  too many clips, too many cameras, malformed and oversized bodies) from 8 threads.
* ``isolation``: device A posts poison (float32-max latents as JSON lists and as float32 base64, year-1 and
  ``-1`` time stamps) while device B posts good clips into the same micro-batches (20 ms window): B's failures
  (any non-200) and lost clips must be 0.
* ``sigkill-sqlite`` / ``sigkill-postgres``: ``benchmarks/faults.py``'s HTTP scenario (cloud SIGKILLed twice,
  agent SIGKILLed once under load, then drained) on SQLite and on PostgreSQL: lost and duplicated.
* ``replicas``: two services on one PostgreSQL database; every request (same clip ids) is sent to both at once,
  and some again: duplicated rows and lost clips.
* ``mqtt``: a private Mosquitto with the generated per-device ACL and a cloud ingesting from it; anonymous
  clients, device A publishing clips as B, A and anonymous publishing forged results and errors to B's topics,
  A subscribing to ``tinyact/#``, and a forged result against B's edge outbox (``MqttTransport`` +
  ``EdgeStore``): every forgery that is stored, delivered or takes a clip out of the outbox counts as "forged
  accepted". One genuine clip of A must get through (so 0 is not vacuous).
* ``slow-clients``: header-trickling, slow-body and idle connections opened while a device posts single clips:
  the device's p99 and errors (with a quiet baseline).
* ``dashboard``: 100,000 rows (``--quick``: 5,000) posted through the API over 200 cameras on SQLite, then
  ``/v1/dashboard/summary`` and ``/v1/dashboard/latest`` timed.

Columns: requests sent, 5xx, lost, duplicated, forged accepted, p99 ms; the target is 0 for every failure column.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import queue
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python benchmarks/reliability.py` from the root

from benchmarks.common import console, machine_info, markdown_table, print_table, save_results  # noqa: E402

HOST = "127.0.0.1"  # the only address this benchmark ever talks to (and PostgreSQL's test URL)
ADMIN = "reliability-admin-token"
DIM = 64
LABELS = ("walking", "running", "waving", "jumping")
PARTS = ("schemathesis", "fuzz", "isolation", "sigkill-sqlite", "sigkill-postgres", "replicas", "mqtt",
         "slow-clients", "dashboard")
FAILURE_COLUMNS = ("5xx", "lost", "duplicated", "forged accepted")


# ---- shared helpers ---------------------------------------------------------------------------------------
class Skip(Exception):
    """A part cannot run here (missing service or tool); the message says why."""


def p99(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(1000 * ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))], 1)


def ms_stats(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"median_ms": None, "p99_ms": None, "max_ms": None}
    return {"median_ms": round(1000 * statistics.median(values), 1), "p99_ms": p99(values),
            "max_ms": round(1000 * max(values), 1)}


class Tally:
    """Thread-safe status counts and latencies."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.status: Counter = Counter()
        self.latencies: list[float] = []
        self.examples_5xx: list[dict[str, Any]] = []

    def add(self, status: int | str, seconds: float | None = None, example: dict | None = None) -> None:
        with self.lock:
            self.status[status] += 1
            if seconds is not None:
                self.latencies.append(seconds)
            if isinstance(status, int) and status >= 500 and example is not None and len(self.examples_5xx) < 10:
                self.examples_5xx.append(example)

    @property
    def sent(self) -> int:
        return sum(self.status.values())

    @property
    def n5xx(self) -> int:
        return sum(v for k, v in self.status.items() if isinstance(k, int) and k >= 500)

    def summary(self) -> dict[str, Any]:
        return {"status": {str(k): v for k, v in sorted(self.status.items(), key=str)}, "5xx_examples": self.examples_5xx}


_model_cache: dict[str, Path] = {}


def toy_model(work: Path) -> Path:
    from benchmarks.cloud_fixtures import fit_toy_classifier

    if "m" not in _model_cache or not _model_cache["m"].exists():  # one model per run (main() deletes its folder)
        _model_cache["m"] = fit_toy_classifier(work / "model", labels=LABELS, latent_dim=DIM, per_class=15).path
    return _model_cache["m"]


@contextlib.contextmanager
def cloud(work: Path, db: str | None = None, **settings: Any):
    """A ``tinyact cloud serve`` child on a free port of 127.0.0.1 with the toy classifier."""
    from tinyact.cloud.server import serve_in_background

    db = db or f"sqlite:///{work / f'cloud-{uuid.uuid4().hex[:8]}.db'}"
    settings = {"rate_limit_per_s": 0.0, "log_level": "warning", **settings}
    with serve_in_background(model=toy_model(work), db=db, host=HOST, admin_token=ADMIN, mode="process",
                             startup_timeout=120, **settings) as service:
        yield service


@contextlib.contextmanager
def postgres_url() -> Iterator[str]:
    from benchmarks.cloud_fixtures import postgres_base_url, postgres_schema

    base, why = postgres_base_url()
    if base is None:
        raise Skip(why)
    with postgres_schema(base) as url:
        yield url


def good_clip(rng: np.random.Generator, camera: str = "cam-1", clip_id: uuid.UUID | None = None,
              dtype: str | None = "float16") -> dict:
    from benchmarks.cloud_fixtures import clip_message

    return clip_message(rng.normal(0, 1, DIM).astype(np.float32), camera_id=camera, clip_id=clip_id, dtype=dtype)


def db_clip_ids(db_url: str, device: str) -> list[str]:
    from sqlalchemy import create_engine, text

    engine = create_engine(db_url)
    try:
        with engine.connect() as con:
            rows = con.execute(text("SELECT p.clip_id FROM predictions p JOIN devices d ON d.id = p.device_id "
                                    "WHERE d.name = :n"), {"n": device}).scalars().all()
    finally:
        engine.dispose()
    return [str(c).replace("-", "").lower() for c in rows]


def norm(clip_id: Any) -> str:
    return str(clip_id).replace("-", "").lower()


def row(part: str, sent: Any, n5xx: Any = "–", lost: Any = "–", dup: Any = "–", forged: Any = "–",
        p99_ms: Any = "–", note: str = "") -> dict[str, Any]:
    return {"part": part, "requests sent": sent, "5xx": n5xx, "lost": lost, "duplicated": dup,
            "forged accepted": forged, "p99 ms": "–" if p99_ms is None else p99_ms, "note": note}


# ---- 1. schemathesis --------------------------------------------------------------------------------------
def st_binary() -> str | None:
    local = Path(sys.executable).parent / "st"
    return str(local) if local.exists() else shutil.which("st")


def run_schemathesis(url: str, header: str, seconds: float, work: Path, name: str, seed: int) -> dict[str, Any]:
    binary = st_binary()
    report = work / f"st-{name}.ndjson"
    command = [binary, "run", f"{url}/openapi.json", "-H", header, "--max-time", str(max(1, int(seconds))),
               "--checks", "not_a_server_error", "--phases", "examples,coverage,fuzzing,stateful",
               "--workers", "8", "--seed", str(seed), "--generation-database", "none", "--continue-on-failure",
               "--suppress-health-check", "all", "--no-color", "--request-timeout", "30",
               "--report", "ndjson", "--report-ndjson-path", str(report)]
    started = time.monotonic()
    # Its own working directory: schemathesis and hypothesis write .hypothesis/ and .schemathesis/ into the cwd.
    done = subprocess.run(command, cwd=work, capture_output=True, text=True, timeout=seconds + 300)
    status: Counter = Counter()
    examples: list[dict] = []
    latencies: list[float] = []
    if report.exists():
        for line in report.read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                event = json.loads(line)
                finished = event.get("ScenarioFinished")
                if not finished:
                    continue
                for interaction in (finished.get("recorder") or {}).get("interactions", {}).values():
                    response = interaction.get("response")
                    code = response["status_code"] if response else "no response"
                    status[code] += 1
                    if response and response.get("elapsed") is not None:
                        latencies.append(float(response["elapsed"]))
                    if isinstance(code, int) and code >= 500 and len(examples) < 10:
                        request = interaction.get("request", {})
                        examples.append({"method": request.get("method"), "uri": request.get("uri"),
                                         "status": code, "body": str(response.get("body"))[:300]})
    summary = [line for line in done.stdout.splitlines() if "generated" in line or "failed" in line.lower()][-5:]
    return {"auth": name, "requests": sum(status.values()), "status": {str(k): v for k, v in sorted(status.items(), key=str)},
            "5xx": sum(v for k, v in status.items() if isinstance(k, int) and k >= 500), "5xx_examples": examples,
            "no_response": status.get("no response", 0), "st_exit": done.returncode, "st_summary": summary,
            "p99_ms": p99(latencies), "seconds": round(time.monotonic() - started, 1)}


def part_schemathesis(args, work: Path) -> dict[str, Any]:
    if st_binary() is None:
        raise Skip("schemathesis is not installed (pip install schemathesis, or the dev extra)")
    runs = []
    with cloud(work) as service:
        key = service.add_device("st-device")
        runs.append(run_schemathesis(service.url, f"Authorization: Bearer {key}", args.seconds / 2, work, "device", args.seed))
        runs.append(run_schemathesis(service.url, f"Authorization: Bearer {ADMIN}", args.seconds / 2, work, "admin", args.seed + 1))
        alive = httpx.get(service.url + "/healthz", timeout=10).status_code
    sent = sum(r["requests"] for r in runs)
    n5xx = sum(r["5xx"] for r in runs)
    p = max((r["p99_ms"] for r in runs if r["p99_ms"] is not None), default=None)
    note = f"device key {runs[0]['requests']}, admin token {runs[1]['requests']}; /healthz after: {alive}"
    return {"row": row("1. schemathesis (OpenAPI)", sent, n5xx, p99_ms=p, note=note), "runs": runs}


# ---- 2. structured /v1/clips fuzz -------------------------------------------------------------------------
def fuzz_case(rng: random.Random, nrng: np.random.Generator, state: dict) -> tuple[str, bytes, dict[str, str]]:
    """One hostile (or good) request: (kind, body bytes, extra headers)."""
    base = good_clip(nrng, camera=f"cam-{rng.randrange(8)}")
    headers: dict[str, str] = {}
    huge = [3.4e38, -3.4e38, 1e38, 1e300, 1.7976931348623157e308, 1e-320, 65504.0, 65520.0, 1e4, 10000.0001]
    kinds = ["good", "latent_huge", "latent_huge_b64", "latent_f16_inf", "latent_wrong_size", "latent_too_long",
             "latent_bad_type", "latent_bad_b64", "latent_bad_dtype", "latent_empty", "ts_bad", "clip_id_bad",
             "dup_in_request", "dup_across", "idem_two_bodies", "camera_bad", "many_cameras", "too_many_clips",
             "extra_fields", "encoder_hash", "body_malformed", "body_oversized", "deep_nesting", "content_type"]
    kind = rng.choice(kinds)
    clip: Any = dict(base)
    clips: Any = None
    raw: bytes | None = None
    if kind == "latent_huge":
        value = rng.choice(huge)
        clip["latent"] = [value * rng.choice([1, -1])] * DIM if rng.random() < 0.5 else \
            [rng.choice(huge + [0.0]) for _ in range(DIM)]
    elif kind == "latent_huge_b64":
        dtype = rng.choice(["float32", "float16"])
        with np.errstate(over="ignore"):  # float16 of 3.4e38 is inf: also a case to send
            values = np.full(DIM, rng.choice([3.4e38, 1e20, 6e4, 1e4 + 1, -3e38]), np.float64).astype(dtype)
        clip["latent"] = {"dtype": dtype, "data": base64.b64encode(values.tobytes()).decode()}
    elif kind == "latent_f16_inf":
        raw_values = np.frombuffer(bytes([0x00, 0x7C] * DIM), np.float16) if rng.random() < 0.5 else \
            np.frombuffer(bytes([0x00, 0x7E] * DIM), np.float16)  # +inf / NaN bit patterns
        clip["latent"] = {"dtype": "float16", "data": base64.b64encode(raw_values.tobytes()).decode()}
    elif kind == "latent_wrong_size":
        n = rng.choice([0, 1, DIM - 1, DIM + 1, 2 * DIM, 1024, 16_384])
        clip["latent"] = [0.5] * n if rng.random() < 0.5 else \
            {"dtype": "float16", "data": base64.b64encode(np.zeros(n, np.float16).tobytes()).decode()}
    elif kind == "latent_too_long":
        clip["latent"] = [0.1] * rng.choice([16_385, 100_000, 500_000])
    elif kind == "latent_bad_type":
        clip["latent"] = rng.choice([None, "abc", 1, [None] * DIM, [[0.1]] * DIM, ["NaN"] * DIM, [True] * DIM,
                                     {"dtype": "float16"}, {"data": "AAAA"}, {}, [float("inf")] * DIM])
    elif kind == "latent_bad_b64":
        clip["latent"] = {"dtype": rng.choice(["float16", "float32"]),
                          "data": rng.choice(["!!!!", "AAA", "=" * 8, "A" * 3, "\u00e9" * 10, "AAAA" * 300_000])}
    elif kind == "latent_bad_dtype":
        clip["latent"] = {"dtype": rng.choice(["float64", "int8", "", "uint8", "f" * 300]), "data": "AAAA"}
    elif kind == "latent_empty":
        clip["latent"] = [] if rng.random() < 0.5 else {"dtype": "float16", "data": ""}
    elif kind == "ts_bad":
        clip["captured_at"] = rng.choice([
            "0001-01-01T00:00:00+05:00", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59-05:00", "9999-12-31T23:59:59Z",
            -1, 0, 1e20, -1e20, 253402300800, "1999-12-31T23:59:59Z", "2000-01-01T00:00:00Z", "now", "",
            "2026-02-30T00:00:00Z", "2026-01-01T24:00:00Z", "2026-01-01T23:59:60Z", "2026-01-01T00:00:00",
            "2026-01-01T00:00:00+99:00", (datetime.now(UTC) + timedelta(days=2)).isoformat(), None, [], {},
            "1" * 400, float("nan"), 1.5e9, "2026-01-01T00:00:00.9999999999Z"])
    elif kind == "clip_id_bad":
        clip["clip_id"] = rng.choice(["", "x", "0" * 32, "00000000-0000-0000-0000-000000000000", 12, None,
                                      "g" * 36, str(uuid.uuid4()).upper(), "{" + str(uuid.uuid4()) + "}", "A" * 5000])
    elif kind == "dup_in_request":
        clips = [clip, {**good_clip(nrng, camera="cam-9"), "clip_id": clip["clip_id"]}]
    elif kind == "dup_across":
        if state["sent_ids"] and rng.random() < 0.8:
            clip["clip_id"] = rng.choice(state["sent_ids"][-200:])
            clip["camera_id"] = rng.choice(["cam-0", "cam-other"])
    elif kind == "idem_two_bodies":
        headers["Idempotency-Key"] = f"idem-{rng.randrange(20)}"
    elif kind == "camera_bad":
        clip["camera_id"] = rng.choice(["", "a" * 65, "a" * 100_000, "../etc", "cam/1", "cam+#", "ca m", "\u00e9",
                                        "\x00", None, 7, "tinyact/x/y"])
    elif kind == "many_cameras":
        clip["camera_id"] = f"new-{uuid.uuid4().hex[:10]}"  # past max_cameras_per_device: 422 too_many_cameras
    elif kind == "too_many_clips":
        clips = [good_clip(nrng, dtype="float16") for _ in range(rng.choice([257, 1000]))] if rng.random() < 0.7 else []
    elif kind == "extra_fields":
        clip["surprise"] = {"a": [1, 2, 3]}
    elif kind == "encoder_hash":
        clip["encoder_hash"] = rng.choice(["", "x" * 201, "deadbeef", None, 5])
    elif kind == "body_malformed":
        raw = rng.choice([b"", b"{", b"null", b"[]", b'{"clips": null}', b'{"clips": {}}', b"\xff\xfe\x00",
                          b'{"clips": [' + b"1," * 1000 + b"1]}", json.dumps({"clips": [clip]}).encode()[:-7],
                          b'{"clips": [], "clips": [1]}', ("\ud800" * 10).encode("utf-8", "surrogatepass")])
    elif kind == "body_oversized":
        raw = b'{"clips": [' + b" " * rng.choice([8 << 20, (8 << 20) + 1, 12 << 20]) + b"]}"
    elif kind == "deep_nesting":
        depth = rng.choice([1000, 10_000, 100_000])
        raw = b'{"clips": [{"latent": ' + b"[" * depth + b"]" * depth + b"}]}"
    elif kind == "content_type":
        headers["Content-Type"] = rng.choice(["text/plain", "application/x-www-form-urlencoded", "multipart/form-data",
                                              "application/json; charset=latin-1"])
        headers["Content-Encoding"] = rng.choice(["gzip", "br", "identity"])
    if raw is None:
        body = {"clips": clips if clips is not None else [clip]}
        if kind == "idem_two_bodies":
            body = {"clips": [good_clip(nrng, camera="cam-1")]}
        raw = json.dumps(body, allow_nan=True).encode()
        for c in body["clips"] if isinstance(body.get("clips"), list) else []:
            if isinstance(c, dict) and isinstance(c.get("clip_id"), str) and len(state["sent_ids"]) < 100_000:
                state["sent_ids"].append(c["clip_id"])
    return kind, raw, headers


def part_fuzz(args, work: Path) -> dict[str, Any]:
    tally = Tally()
    per_kind: dict[str, Counter] = {}
    lock = threading.Lock()
    with cloud(work) as service:
        key = service.add_device("fuzz-device")
        deadline = time.monotonic() + args.seconds

        def worker(index: int) -> None:
            rng = random.Random(args.seed * 1000 + index)
            nrng = np.random.default_rng(args.seed * 1000 + index)
            state: dict[str, list] = {"sent_ids": []}
            with httpx.Client(base_url=service.url, timeout=60) as client:
                while time.monotonic() < deadline:
                    kind, raw, extra = fuzz_case(rng, nrng, state)
                    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json", **extra}
                    start = time.perf_counter()
                    try:
                        status: int | str = client.post("/v1/clips", content=raw, headers=headers).status_code
                    except httpx.HTTPError as error:
                        status = f"transport error: {type(error).__name__}"
                    tally.add(status, time.perf_counter() - start, {"kind": kind, "body": raw[:300].decode(errors="replace")})
                    with lock:
                        per_kind.setdefault(kind, Counter())[str(status)] += 1

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(worker, range(8)))
        alive = httpx.get(service.url + "/healthz", timeout=10).status_code
    errors = sum(v for k, v in tally.status.items() if isinstance(k, str))
    note = f"{len(per_kind)} kinds; transport errors {errors}; /healthz after: {alive}"
    return {"row": row("2. /v1/clips structured fuzz", tally.sent, tally.n5xx, p99_ms=p99(tally.latencies), note=note),
            **tally.summary(), "per_kind": {k: dict(v) for k, v in sorted(per_kind.items())}}


# ---- 3. cross-device isolation ----------------------------------------------------------------------------
def poison_clip(rng: random.Random, nrng: np.random.Generator) -> dict:
    clip = good_clip(nrng)
    choice = rng.randrange(4)
    if choice == 0:
        clip["latent"] = [3.4e38] * DIM
    elif choice == 1:
        clip["latent"] = {"dtype": "float32", "data": base64.b64encode(np.full(DIM, 3.4e38, np.float32).tobytes()).decode()}
    elif choice == 2:
        clip["captured_at"] = "0001-01-01T00:00:00+05:00"
    else:
        clip["captured_at"] = -1
    return clip


def part_isolation(args, work: Path) -> dict[str, Any]:
    bad, good = Tally(), Tally()
    acked: list[str] = []
    lock = threading.Lock()
    with cloud(work, batch_window_ms=20.0) as service:  # a wide window: A's and B's requests share micro-batches
        keys = {"A": service.add_device("device-a"), "B": service.add_device("device-b")}
        deadline = time.monotonic() + args.seconds

        def worker(index: int) -> None:
            who = "A" if index % 2 == 0 else "B"
            rng, nrng = random.Random(index), np.random.default_rng(index)
            headers = {"Authorization": f"Bearer {keys[who]}", "Content-Type": "application/json"}
            with httpx.Client(base_url=service.url, timeout=60) as client:
                while time.monotonic() < deadline:
                    if who == "A":
                        clips = [poison_clip(rng, nrng) for _ in range(rng.choice([1, 1, 4]))]
                    else:
                        clips = [good_clip(nrng, camera=f"cam-{rng.randrange(4)}") for _ in range(rng.choice([1, 1, 4]))]
                    start = time.perf_counter()
                    try:
                        status: int | str = client.post("/v1/clips", content=json.dumps({"clips": clips}),
                                                        headers=headers).status_code
                    except httpx.HTTPError as error:
                        status = f"transport error: {type(error).__name__}"
                    (bad if who == "A" else good).add(status, time.perf_counter() - start, {"device": who})
                    if who == "B" and status == 200:
                        with lock:
                            acked.extend(norm(c["clip_id"]) for c in clips)

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(worker, range(8)))
        stored_b = db_clip_ids(service.db_url, "device-b")
        stored_a = db_clip_ids(service.db_url, "device-a")
    b_failures = good.sent - good.status.get(200, 0)
    lost = len(set(acked) - set(stored_b))
    note = (f"B: {good.sent} requests, failures {b_failures}; A (poison): {bad.sent} requests "
            f"{dict(sorted(((str(k), v) for k, v in bad.status.items())))}, rows stored for A: {len(stored_a)}")
    return {"row": row("3. cross-device isolation (B's failures)", good.sent + bad.sent, bad.n5xx + good.n5xx,
                       lost=lost, dup=len(stored_b) - len(set(stored_b)), p99_ms=p99(good.latencies), note=note),
            "b_failures": b_failures, "b_status": good.summary(), "a_status": bad.summary(), "a_rows": len(stored_a)}


# ---- 4. SIGKILL of the cloud and the edge -----------------------------------------------------------------
def part_sigkill(args, work: Path, backend: str) -> dict[str, Any]:
    from benchmarks import faults

    clips = 40 if args.quick else max(100, int(args.seconds * 10))
    scenario = argparse.Namespace(clips=clips, cameras=8 if args.quick else 20, interval=0.5 if args.quick else 1.0,
                                  size=32, outage=1.0 if args.quick else 3.0, timeout=max(120.0, 4 * args.seconds),
                                  drain_timeout=120.0, results_wait=1.0)
    if backend == "sqlite":
        result = faults.run_scenario("http", scenario, work / "sigkill-sqlite")
    else:
        with postgres_url() as pg:
            original = faults.Cloud

            class PostgresCloud(original):  # faults.Cloud on PostgreSQL: same process, same faults
                def __init__(self, *a, **k) -> None:
                    import yaml

                    from tinyact.cloud.config import CloudConfig

                    super().__init__(*a, **k)
                    settings = yaml.safe_load(self.config.read_text())
                    settings["db"] = self.db = pg
                    self.config.write_text(CloudConfig.from_dict(settings).to_yaml())

            faults.Cloud = PostgresCloud
            try:
                result = faults.run_scenario("http", scenario, work / "sigkill-postgres")
            finally:
                faults.Cloud = original
    note = (f"cloud SIGKILLed twice, agent once; captured {result['captured']}, cloud rows {result['cloud_rows']}, "
            f"phantoms {result['phantoms']}, dropped {result['dropped']}, {result['seconds']} s")
    name = f"4. SIGKILL cloud + edge ({'SQLite' if backend == 'sqlite' else 'PostgreSQL'})"
    return {"row": row(name, result["captured"], "–", result["lost"], result["duplicates"], note=note), "faults": result}


# ---- 5. two replicas on one PostgreSQL ----------------------------------------------------------------------
def part_replicas(args, work: Path) -> dict[str, Any]:
    tally = Tally()
    acked: set[str] = set()
    sent_ids: set[str] = set()
    lock = threading.Lock()
    with postgres_url() as pg, cloud(work, db=pg) as one, cloud(work, db=pg, migrate=False) as two:
        key = one.add_device("replica-device")
        deadline = time.monotonic() + args.seconds

        def post(url: str, body: bytes, ids: list[str], client: httpx.Client) -> None:
            start = time.perf_counter()
            try:
                status: int | str = client.post(url + "/v1/clips", content=body, headers={
                    "Authorization": f"Bearer {key}", "Content-Type": "application/json"}).status_code
            except httpx.HTTPError as error:
                status = f"transport error: {type(error).__name__}"
            tally.add(status, time.perf_counter() - start, {"url": url})
            if status == 200:
                with lock:
                    acked.update(ids)

        def worker(index: int) -> None:
            rng, nrng = random.Random(index), np.random.default_rng(index)
            with httpx.Client(timeout=60) as c1, httpx.Client(timeout=60) as c2, ThreadPoolExecutor(2) as pair:
                while time.monotonic() < deadline:
                    clips = [good_clip(nrng, camera=f"cam-{rng.randrange(4)}") for _ in range(rng.choice([1, 4, 16]))]
                    ids = [norm(c["clip_id"]) for c in clips]
                    with lock:
                        sent_ids.update(ids)
                    body = json.dumps({"clips": clips}).encode()
                    shuffled = json.dumps({"clips": rng.sample(clips, len(clips))}).encode()
                    # The same clip ids to both replicas at the same moment (an edge retrying after a timeout
                    # against a load balancer), sometimes in another order, sometimes a third time.
                    futures = [pair.submit(post, one.url, body, ids, c1), pair.submit(post, two.url, shuffled, ids, c2)]
                    for future in futures:
                        future.result()
                    if rng.random() < 0.2:
                        post(rng.choice([one.url, two.url]), body, ids, c1)

        with ThreadPoolExecutor(6) as pool:
            list(pool.map(worker, range(6)))
        stored = db_clip_ids(pg, "replica-device")
    lost = len(acked - set(stored))
    note = f"{len(sent_ids)} distinct clip ids, each sent to both replicas at once; rows {len(stored)}; " \
           f"status {dict(sorted((str(k), v) for k, v in tally.status.items()))}"
    return {"row": row("5. two replicas, one PostgreSQL, same clip ids", tally.sent, tally.n5xx, lost,
                       len(stored) - len(set(stored)), p99_ms=p99(tally.latencies), note=note), **tally.summary(),
            "distinct_ids": len(sent_ids), "rows": len(stored), "unacked_ids": len(sent_ids - acked)}


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
                times, codes = [], Counter()
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


# ---- main -------------------------------------------------------------------------------------------------
RUNNERS: dict[str, Callable[[Any, Path], dict[str, Any]]] = {
    "schemathesis": part_schemathesis,
    "fuzz": part_fuzz,
    "isolation": part_isolation,
    "sigkill-sqlite": lambda args, work: part_sigkill(args, work, "sqlite"),
    "sigkill-postgres": lambda args, work: part_sigkill(args, work, "postgres"),
    "replicas": part_replicas,
    "mqtt": part_mqtt,
    "slow-clients": part_slow_clients,
    "dashboard": part_dashboard,
}

TITLES = {"schemathesis": "1. schemathesis (OpenAPI)", "fuzz": "2. /v1/clips structured fuzz",
          "isolation": "3. cross-device isolation", "sigkill-sqlite": "4. SIGKILL cloud + edge (SQLite)",
          "sigkill-postgres": "4. SIGKILL cloud + edge (PostgreSQL)", "replicas": "5. two replicas, one PostgreSQL",
          "mqtt": "6. MQTT spoofing / forging", "slow-clients": "7. slow clients", "dashboard": "8. dashboard timings"}

COLUMNS = ("part", "requests sent", "5xx", "lost", "duplicated", "forged accepted", "p99 ms")


def write_markdown(path: Path, results: dict[str, Any]) -> None:
    rows = [[r["row"][c] for c in COLUMNS] for r in results["parts"].values()]
    notes = [f"* **{r['row']['part']}**: {r['row']['note']}" for r in results["parts"].values() if r["row"]["note"]]
    machine = results["machine"]
    failures = [f"{r['row']['part']}: {c} = {r['row'][c]}" for r in results["parts"].values() for c in FAILURE_COLUMNS
                if isinstance(r["row"][c], int) and r["row"][c] > 0]
    text = f"""# Reliability

`benchmarks/reliability.py` (issue 19, section 6) attacks the cloud service and the edge on 127.0.0.1 only: every
service is a child process it starts on a free port (and a private Mosquitto with the configuration of
`tinyact cloud broker-config`); PostgreSQL parts use a fresh schema of the local test server. The target is
**0 in every failure column** (5xx, lost, duplicated, forged accepted); "–" means the column does not apply.

{markdown_table(COLUMNS, rows)}

**Failures found: {'none' if not failures else '; '.join(failures)}.**

What each row counts:

{chr(10).join(notes)}

* "requests sent": HTTP requests (schemathesis: counted from its NDJSON report), captured clips (SIGKILL rows),
  or MQTT attempts (logins, publications, sessions). "p99 ms": of the part's device requests (dashboard: the
  slowest of the three views).

Command: `{results['command']}` ({results['settings']['seconds']} s per part{', --quick' if results['settings']['quick'] else ''});
{results['seconds']:.0f} s in all.
Machine: {machine.get('cpu')}, {machine.get('cores')} cores, Python {machine.get('python')}, {machine.get('platform')}
(load average {results['load_at_start'][0]:.2f} at the start). Date: {results['date']}.

The full-size run (issue 19's targets: ≥ 40,000 schemathesis requests, 1,000+ clips per SIGKILL run, 100,000
dashboard rows) is `python benchmarks/reliability.py --seconds 300 --md docs/RELIABILITY.md --json
docs/results/reliability.json`: schemathesis sends about {results.get('st_rate', '?')} requests/s here, so 40,000
need about {results.get('st_seconds_for_40k', '?')} s of `--seconds`. Raw numbers: `docs/results/reliability.json`.
"""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0, help="time budget of each part")
    parser.add_argument("--quick", action="store_true", help="a few seconds per part, small data (for the tests)")
    parser.add_argument("--parts", default=",".join(PARTS), help="comma-separated: " + ", ".join(PARTS))
    parser.add_argument("--dashboard-rows", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=19)
    parser.add_argument("--work", type=Path, default=None, help="keep databases and logs here")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--md", type=Path, default=None, help="write the RELIABILITY.md report here")
    args = parser.parse_args(argv)
    if args.quick and "--seconds" not in (argv if argv is not None else sys.argv[1:]):
        args.seconds = 3.0
    wanted = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = sorted(set(wanted) - set(PARTS))
    if unknown:
        parser.error(f"unknown parts {unknown}; choose from {', '.join(PARTS)}")
    keep = args.work is not None
    root = args.work or Path(tempfile.mkdtemp(prefix="tinyact-reliability-"))
    root.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    results: dict[str, Any] = {"settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
                               "load_at_start": os.getloadavg(), "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
                               "parts": {}}
    try:
        for name in wanted:
            console.print(f"[bold]{name}[/] ({args.seconds:g} s)")
            work = root / name
            work.mkdir(parents=True, exist_ok=True)
            part_start = time.monotonic()
            try:
                result = RUNNERS[name](args, work)
            except Skip as why:
                result = {"row": row(TITLES[name], "skipped", note=f"skipped: {why}"), "skipped": str(why)}
            except Exception as error:  # a part that breaks is reported, and the others still run
                import traceback

                result = {"row": row(TITLES[name], "error", note=f"error: {type(error).__name__}: {error}"),
                          "error": traceback.format_exc()}
            result["seconds"] = round(time.monotonic() - part_start, 1)
            results["parts"][name] = result
            console.print(f"  {result['row']}")
    finally:
        if not keep:
            shutil.rmtree(root, ignore_errors=True)
    st = results["parts"].get("schemathesis", {})
    if st.get("runs"):
        spent = sum(r["seconds"] for r in st["runs"])
        rate = sum(r["requests"] for r in st["runs"]) / max(spent, 1e-9)
        results["st_rate"] = round(rate)
        results["st_seconds_for_40k"] = round(40_000 / max(rate, 1e-9))
    results["seconds"] = round(time.monotonic() - started, 1)
    results["machine"] = machine_info()
    results["command"] = "python benchmarks/reliability.py " + " ".join(argv if argv is not None else sys.argv[1:])
    rows = [[r["row"][c] for c in COLUMNS] for r in results["parts"].values()]
    print_table("Reliability (target: 0 in every failure column)", COLUMNS, rows)
    results["table_markdown"] = markdown_table(COLUMNS, rows)
    if args.md is not None:
        write_markdown(args.md, results)
    save_results(args.json, results)
    return results


if __name__ == "__main__":
    main()
