"""A saved classifier: the folder ``tinyact classify fit`` writes and the cloud service loads.

::

    DIR/model.joblib       the fitted scikit-learn-compatible estimator (Pipeline, XGBClassifier, …)
    DIR/classifier.json    {"format": 1, "kind": "svm", "version": "svm-1a2b3c4d5e6f", "label_names": [...],
                            "latent_dim": 1024, "encoder_hash": "…", "metrics": {...}, "created": "…"}

``version`` is the kind plus a hash of ``model.joblib``: every prediction the cloud stores records it.
Loading checks the latent dimension and encoder hash the caller expects and refuses a mismatch with a clear
message. ``model.joblib`` is a pickle: load only folders you made or trust (the cloud treats model loading
as an admin action).

The estimator was fitted on label *indices* into ``label_names``; :meth:`SavedClassifier.predict_proba`
returns one column per label name even if some class was absent from the training data.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import joblib
import numpy as np

from tinyact.errors import TinyActError
from tinyact.hashing import file_sha256

FORMAT_VERSION = 1


class ClassifierMismatchError(TinyActError):
    """A saved classifier does not fit the latents it is asked to classify."""


@dataclass
class SavedClassifier:
    """A fitted estimator with the facts needed to use it safely."""

    estimator: Any
    label_names: list[str]
    latent_dim: int
    encoder_hash: str
    kind: str
    version: str
    metrics: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    def check(self, latent_dim: int | None = None, encoder_hash: str | None = None) -> None:
        """Raise :class:`ClassifierMismatchError` if latents of this dimension/encoder don't fit."""
        where = f" ({self.path})" if self.path else ""
        if latent_dim is not None and latent_dim != self.latent_dim:
            raise ClassifierMismatchError(
                f"classifier{where} expects {self.latent_dim}-d latents, got {latent_dim}-d; "
                "extract latents with the encoder this classifier was fitted on"
            )
        if encoder_hash and self.encoder_hash and encoder_hash != self.encoder_hash:
            raise ClassifierMismatchError(
                f"classifier{where} was fitted on latents of encoder {self.encoder_hash}, not {encoder_hash}; "
                "refit it on latents from this encoder"
            )

    def predict_proba(self, latents: np.ndarray) -> np.ndarray:
        """``[N, D]`` float -> ``[N, len(label_names)]`` class probabilities (rows sum to 1)."""
        latents = np.asarray(latents, dtype=np.float32)
        if latents.ndim != 2 or latents.shape[1] != self.latent_dim:
            raise ClassifierMismatchError(f"expected latents [N, {self.latent_dim}], got {list(latents.shape)}")
        if hasattr(self.estimator, "predict_proba"):
            scores = np.asarray(self.estimator.predict_proba(latents), dtype=np.float64)
        else:  # e.g. an SVM without probability estimates: softmax of its decision values
            decision = np.asarray(self.estimator.decision_function(latents), dtype=np.float64)
            decision = decision - decision.max(axis=1, keepdims=True)
            scores = np.exp(decision) / np.exp(decision).sum(axis=1, keepdims=True)
        classes = np.asarray(getattr(self.estimator, "classes_", np.arange(scores.shape[1])), dtype=np.int64)
        full = np.zeros((len(latents), len(self.label_names)), dtype=np.float64)
        full[:, classes] = scores
        return full

    def predict(self, latents: np.ndarray) -> np.ndarray:
        """Label indices ``[N]``."""
        return self.predict_proba(latents).argmax(axis=1)


def _file_hash(path: Path) -> str:
    return file_sha256(path)[:12]


def save_classifier(
    out: str | Path,
    estimator: Any,
    *,
    label_names: list[str],
    latent_dim: int,
    encoder_hash: str,
    kind: str,
    metrics: dict[str, Any] | None = None,
) -> SavedClassifier:
    """Write ``estimator`` and its facts to the folder ``out``; returns the loaded view of it."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model_path = out / "model.joblib"
    joblib.dump(estimator, model_path)
    version = f"{kind}-{_file_hash(model_path)}"
    info = {
        "format": FORMAT_VERSION,
        "kind": kind,
        "version": version,
        "label_names": list(label_names),
        "latent_dim": int(latent_dim),
        "encoder_hash": encoder_hash,
        "metrics": metrics or {},
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    (out / "classifier.json").write_text(json.dumps(info, indent=2))
    return SavedClassifier(estimator, list(label_names), int(latent_dim), encoder_hash, kind, version, metrics or {}, out)


def load_classifier(
    folder: str | Path, *, latent_dim: int | None = None, encoder_hash: str | None = None
) -> SavedClassifier:
    """Load a folder written by :func:`save_classifier`, checking it against the expected latents."""
    folder = Path(folder)
    info_path = folder / "classifier.json"
    if not info_path.is_file() or not (folder / "model.joblib").is_file():
        raise TinyActError(f"{folder} is not a saved classifier (needs classifier.json and model.joblib)")
    info = json.loads(info_path.read_text())
    if info.get("format") != FORMAT_VERSION:
        raise TinyActError(f"{folder}: classifier format {info.get('format')} is not supported (need {FORMAT_VERSION})")
    if f"{info['kind']}-{_file_hash(folder / 'model.joblib')}" != info["version"]:
        raise TinyActError(f"{folder}/model.joblib does not match its classifier.json (changed after saving?)")
    saved = SavedClassifier(
        estimator=joblib.load(folder / "model.joblib"),
        label_names=list(info["label_names"]),
        latent_dim=int(info["latent_dim"]),
        encoder_hash=info.get("encoder_hash", ""),
        kind=info["kind"],
        version=info["version"],
        metrics=info.get("metrics", {}),
        path=folder,
    )
    saved.check(latent_dim, encoder_hash)
    return saved


def to_jsonable(value: Any) -> Any:
    """Metrics as plain JSON (numpy scalars and arrays become numbers and lists)."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)
