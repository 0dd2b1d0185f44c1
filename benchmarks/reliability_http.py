"""Reliability parts over HTTP: schemathesis, the structured ``/v1/clips`` fuzz, cross-device isolation,
SIGKILL of the cloud and the edge, and two replicas on one PostgreSQL (``benchmarks/reliability.py``)."""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import random
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from benchmarks.reliability_common import (
    ADMIN,
    DIM,
    Skip,
    Tally,
    cloud,
    db_clip_ids,
    good_clip,
    norm,
    p99,
    postgres_url,
    row,
)


# ---- 1. schemathesis --------------------------------------------------------------------------------------
def st_binary() -> str | None:
    local = Path(sys.executable).parent / "st"
    return str(local) if local.exists() else shutil.which("st")


def run_schemathesis(url: str, header: str, seconds: float, work: Path, name: str, seed: int) -> dict[str, Any]:
    binary = st_binary()
    if binary is None:
        raise RuntimeError("schemathesis (st) is not installed")
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
            result = faults.run_scenario("http", scenario, work / "sigkill-postgres", db_url=pg)
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
