"""What every part of ``benchmarks/reliability.py`` shares: the toy classifier, a cloud on a free port,
PostgreSQL schemas, good clips, counters and the result row."""

from __future__ import annotations

import contextlib
import statistics
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from tinyact.wire import WireDtype

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
        fit_toy_classifier(work / "model", labels=LABELS, latent_dim=DIM, per_class=15)
        _model_cache["m"] = work / "model"
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
              dtype: WireDtype | None = "float16") -> dict:
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
