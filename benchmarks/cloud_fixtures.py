"""Helpers to exercise the cloud service without a trained encoder: a classifier fitted on generated latents,
latents it recognises, ready-made clip messages, and the local PostgreSQL and MQTT test servers. Used by the
cloud and edge tests and the cloud benchmarks (not part of the package); real deployments load folders
written by ``tinyact classify fit`` (same format).

Generated latents: class ``k`` is a Gaussian blob around a fixed random centre (``seed``), so a latent drawn
near centre ``k`` is classified as label ``k`` by every kind of classifier here.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

import tinyact.classifiers.estimators as estimators
from tinyact.classifiers.saved import SavedClassifier, save_classifier
from tinyact.wire import ClipIn, WireDtype, encode_latent

DEFAULT_LABELS = ("walking", "running", "waving", "jumping", "sitting", "clapping")
KINDS = ("logreg", *estimators.FACTORIES)


def class_centres(n_classes: int, latent_dim: int, seed: int = 0) -> np.ndarray:
    """float32 ``[n_classes, latent_dim]`` blob centres."""
    return (np.random.default_rng(seed).normal(size=(n_classes, latent_dim)) * 2.0).astype(np.float32)


def toy_latents(
    labels: np.ndarray | list[int], latent_dim: int = 1024, n_classes: int = len(DEFAULT_LABELS), seed: int = 0,
    noise: float = 1.0, rng: np.random.Generator | None = None,
) -> np.ndarray:
    """float32 ``[len(labels), latent_dim]``: a latent near the centre of each given label index."""
    centres = class_centres(n_classes, latent_dim, seed)
    rng = rng or np.random.default_rng(seed + 1)
    labels = np.asarray(labels, dtype=np.int64)
    return (centres[labels] + rng.normal(size=(len(labels), latent_dim)) * noise).astype(np.float32)


def make_estimator(kind: str, seed: int = 0) -> Any:
    """A fresh scikit-learn-compatible estimator of ``kind``: a logistic regression for ``logreg``, else the
    pipeline ``tinyact classify fit`` uses (:func:`tinyact.classifiers.estimators.make_estimator`, default
    parameters)."""
    if kind == "logreg":
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(max_iter=500)
    return estimators.make_estimator(kind, seed=seed)


def fit_toy_classifier(
    out: str | Path,
    *,
    kind: str = "logreg",
    labels: tuple[str, ...] | list[str] = DEFAULT_LABELS,
    latent_dim: int = 1024,
    per_class: int = 40,
    encoder_hash: str = "toy-encoder",
    seed: int = 0,
) -> SavedClassifier:
    """Fit ``kind`` on generated latents (``per_class`` per label) and save it to ``out`` in the
    ``tinyact classify fit`` folder format."""
    y = np.repeat(np.arange(len(labels)), per_class)
    x = toy_latents(y, latent_dim, len(labels), seed)
    estimator = make_estimator(kind, seed).fit(x, y)
    accuracy = float((estimator.predict(x) == y).mean())
    return save_classifier(
        out, estimator, label_names=list(labels), latent_dim=latent_dim, encoder_hash=encoder_hash, kind=kind,
        metrics={"train_accuracy": accuracy, "note": "fitted on generated latents (benchmarks/cloud_fixtures.py)"},
    )


def clip_message(
    latent: np.ndarray,
    *,
    camera_id: str = "cam-1",
    clip_id: uuid.UUID | None = None,
    captured_at: datetime | None = None,
    dtype: WireDtype | None = "float16",
    encoder_hash: str | None = None,
) -> dict:
    """One clip as the JSON dict of :class:`tinyact.wire.ClipIn`; ``dtype=None`` sends a plain JSON array;
    ``encoder_hash=None`` leaves the field out (an older edge's message)."""
    clip = ClipIn(
        clip_id=clip_id or uuid.uuid4(),
        camera_id=camera_id,
        captured_at=captured_at or datetime.now(UTC) - timedelta(seconds=1),
        encoder_hash=encoder_hash,
        latent=encode_latent(latent, dtype) if dtype else [float(v) for v in np.asarray(latent, np.float32)],
    )
    return clip.model_dump(mode="json", exclude_none=True)


POSTGRES_URLS = (
    "postgresql+psycopg://postgres@127.0.0.1:5432/test",
    "postgresql+psycopg://root@127.0.0.1:5432/test",
)


def postgres_base_url() -> tuple[str | None, str]:
    """The first PostgreSQL test server URL that answers (``$TINYACT_TEST_POSTGRES`` first), or
    ``(None, why not)``."""
    import os

    from sqlalchemy import create_engine, text

    candidates = [os.environ["TINYACT_TEST_POSTGRES"]] if os.environ.get("TINYACT_TEST_POSTGRES") else list(POSTGRES_URLS)
    reasons = []
    for url in candidates:
        engine = create_engine(url, connect_args={"connect_timeout": 3})
        try:
            with engine.connect() as connection:
                connection.execute(text("SELECT 1"))
            return url, ""
        except Exception as error:
            reasons.append(f"{url.split('@')[-1]}: {str(error).splitlines()[0][:120]}")
        finally:
            engine.dispose()
    return None, "PostgreSQL does not answer (" + "; ".join(reasons) + ")"


@contextmanager
def postgres_schema(base_url: str) -> Iterator[str]:
    """A fresh schema on ``base_url`` for one test run; yields a URL whose connections use only that schema,
    and drops it afterwards (so concurrent runs never see each other's tables)."""
    from sqlalchemy import create_engine, text

    name = f"tinyact_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base_url)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{name}"'))
    separator = "&" if "?" in base_url else "?"
    try:
        yield f"{base_url}{separator}options=-csearch_path%3D{name}"
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{name}" CASCADE'))
        admin.dispose()


def mqtt_available(host: str = "127.0.0.1", port: int = 1883) -> bool:
    """Whether an MQTT broker accepts TCP connections at ``host:port``."""
    import socket

    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False
