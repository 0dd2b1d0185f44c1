"""The model registry: which classifier answers, and swapping it without downtime.

A swap loads and warms the new classifier while the old one keeps serving, then replaces one reference;
a batch already being classified finishes on the model it started with, and every result carries the
version of the model that produced it. The choice is shared between replicas through the database
(``model_versions.activated_at``): a replica that sees a newer activation loads that folder too.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from sqlalchemy import Engine, select, update

from tinyact.classifiers.bundle import classifier_folder
from tinyact.classifiers.saved import ClassifierMismatchError, SavedClassifier, load_classifier, to_jsonable
from tinyact.cloud.db.engine import write_tx
from tinyact.cloud.db.schema import model_versions
from tinyact.errors import TinyActError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedModel:
    """A classifier in service. ``predict_proba``: float32 ``[N, latent_dim]`` -> float64 ``[N, classes]``."""

    classifier: SavedClassifier
    path: Path
    loaded_at: datetime

    @property
    def version(self) -> str:
        return self.classifier.version

    @property
    def latent_dim(self) -> int:
        return self.classifier.latent_dim

    @property
    def label_names(self) -> list[str]:
        return self.classifier.label_names

    def predict_proba(self, latents: np.ndarray) -> np.ndarray:
        return self.classifier.predict_proba(latents)

    def describe(self) -> dict:
        c = self.classifier
        return {
            "version": c.version,
            "kind": c.kind,
            "path": str(self.path),
            "latent_dim": c.latent_dim,
            "encoder_hash": c.encoder_hash,
            "labels": list(c.label_names),
            "loaded_at": self.loaded_at.isoformat(),
            "metrics": c.metrics,
        }


class ModelRegistry:
    """Holds the active :class:`LoadedModel`; thread-safe swaps.

    ``expected_encoder_hash``: refuse classifiers fitted on another encoder's latents (``None``: the first
    loaded model's hash becomes the expectation, so a swap cannot silently change the latent space that
    edge devices are sending).
    """

    def __init__(self, expected_encoder_hash: str | None = None) -> None:
        self.expected_encoder_hash = expected_encoder_hash
        self._current: LoadedModel | None = None
        self._lock = threading.Lock()

    @property
    def current(self) -> LoadedModel | None:
        return self._current

    def load(self, path: str | Path, *, allow_encoder_change: bool = False) -> LoadedModel:
        """Load, check and warm the classifier in ``path`` and make it current; returns it.

        Raises :class:`ClassifierMismatchError` when its encoder hash or latent size differs from the
        current model's (unless ``allow_encoder_change``), :class:`TinyActError` when it cannot be loaded.
        """
        text = str(path)
        if "\x00" in text:
            raise TinyActError("the model path contains a NUL character")
        try:
            path = Path(text).expanduser().resolve()
        except (RuntimeError, ValueError, OSError) as error:  # e.g. ~nouser: no such user's home
            raise TinyActError(f"model path {text!r} cannot be resolved: {error}") from None
        try:
            classifier = load_classifier(classifier_folder(path))  # a bundle's classifier, checked against its encoder
        except (OSError, ValueError, KeyError, TypeError) as error:  # unreadable or malformed files
            raise TinyActError(f"{path} is not a readable saved classifier: {error}") from None
        with self._lock:
            current = self._current
            if not allow_encoder_change:
                expected = self.expected_encoder_hash or (current.classifier.encoder_hash if current else None)
                classifier.check(latent_dim=current.latent_dim if current else None, encoder_hash=expected)
        # Warm-up: the first call of many estimators allocates, validates or JITs; do it before serving.
        try:
            classifier.predict_proba(np.zeros((2, classifier.latent_dim), np.float32))
        except Exception as error:  # a broken pickle must not replace a working model
            raise TinyActError(f"classifier {path} failed a test prediction: {error}") from None
        loaded = LoadedModel(classifier, path, datetime.now(UTC))
        with self._lock:
            self._current = loaded
            if allow_encoder_change or self.expected_encoder_hash is None:
                self.expected_encoder_hash = classifier.encoder_hash or None
        logger.info("model %s (%s, %d labels) is now active", loaded.version, classifier.kind, len(loaded.label_names))
        return loaded


def record_model(engine: Engine, model: LoadedModel, *, activate: bool) -> None:
    """Insert ``model`` into ``model_versions`` (once per version); ``activate`` makes it the active one
    for every replica."""
    now = datetime.now(UTC)
    c = model.classifier
    with write_tx(engine) as connection:
        exists = connection.execute(select(model_versions.c.id).where(model_versions.c.version == c.version)).first()
        if exists is None:
            connection.execute(
                model_versions.insert().values(
                    version=c.version,
                    kind=c.kind,
                    path=str(model.path),
                    label_names=list(c.label_names),
                    latent_dim=c.latent_dim,
                    encoder_hash=c.encoder_hash or "",
                    metrics=to_jsonable(c.metrics),
                    first_loaded_at=now,
                    activated_at=now if activate else None,
                )
            )
        elif activate:
            connection.execute(
                update(model_versions)
                .where(model_versions.c.version == c.version)
                .values(activated_at=now, path=str(model.path))
            )


def active_model_row(engine: Engine) -> tuple[str, str] | None:
    """``(version, path)`` of the model most recently activated by any replica, or ``None``."""
    with engine.connect() as connection:
        row = connection.execute(
            select(model_versions.c.version, model_versions.c.path)
            .where(model_versions.c.activated_at.is_not(None))
            .order_by(model_versions.c.activated_at.desc(), model_versions.c.id.desc())
            .limit(1)
        ).first()
    return (row[0], row[1]) if row else None


__all__ = ["ClassifierMismatchError", "LoadedModel", "ModelRegistry", "active_model_row", "record_model"]
