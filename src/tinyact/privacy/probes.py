"""Attribute probes: how well a simple classifier predicts *who* (actor) and *where* (scene) from latents.

Protocol. Identity is a closed-set question: "is this latent from one of the people I have seen?". So the probe
is trained and tested on clips of the *same* actors: stratified k-fold over clips, stratified by the attribute,
so every actor appears in every training fold and the test fold holds *other clips* of those actors (other
actions, backgrounds, lighting). Testing on unseen actors would make identity unanswerable by construction.
The scene (background kind) is per clip and is probed the same way.

Every accuracy comes with its chance levels: ``uniform`` (1 / number of classes) and ``majority`` (always
predicting the training fold's most frequent class, measured on the same folds), and, for identity,
:func:`conditional_baseline` (predict the actor from the action label alone) in case actor and action were
correlated in the data.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

PROBE_KINDS = ("logreg", "rf")

# BLAS_NOTE: the probes fit small problems (a few hundred rows); a multi-threaded BLAS spends more time
# synchronising than computing on them and, on a busy machine, was 20× slower than one thread.


@dataclass
class ProbeResult:
    """Cross-validated accuracy of one probe, with its chance levels."""

    target: str
    kind: str
    accuracy: float
    accuracy_std: float
    majority: float
    uniform: float
    classes: int
    samples: int
    folds: int
    dropped_classes: int

    def to_dict(self) -> dict:
        return asdict(self)


def make_probe(kind: str = "logreg", seed: int = 0) -> Pipeline:
    """``logreg``: standardise + multinomial logistic regression (L2, C = 1, tolerance 1e-3); ``rf``: random forest (200 trees)."""
    if kind == "logreg":
        return make_pipeline(StandardScaler(), LogisticRegression(C=1.0, tol=1e-3, max_iter=1000))
    if kind == "rf":
        return make_pipeline(RandomForestClassifier(n_estimators=200, random_state=seed, n_jobs=1))
    raise ValueError(f"unknown probe kind {kind!r}; choose one of {PROBE_KINDS}")


def _keep_classes_with(y: np.ndarray, minimum: int) -> np.ndarray:
    """Boolean mask of rows whose class has at least ``minimum`` rows (StratifiedKFold needs one per fold)."""
    counts = Counter(y.tolist())
    return np.array([counts[v] >= minimum for v in y.tolist()], dtype=bool)


def probe_cv(x: np.ndarray, y: np.ndarray, kind: str = "logreg", folds: int = 5, seed: int = 0, target: str = "") -> ProbeResult:
    """Stratified ``folds``-fold accuracy of a probe predicting ``y`` ``[N]`` from ``x`` ``[N, D]``.

    Classes with fewer than ``folds`` rows are dropped (counted in ``dropped_classes``).
    """
    x = np.asarray(x, dtype=np.float32)
    y = np.asarray(y).astype(str)
    keep = _keep_classes_with(y, folds)
    dropped = len(set(y.tolist())) - len(set(y[keep].tolist()))
    x, y = x[keep], y[keep]
    classes = sorted(set(y.tolist()))
    if len(classes) < 2:
        raise ValueError(f"probe {target!r}: need at least 2 classes with {folds} clips each, got {len(classes)}")
    accuracies, majorities = [], []
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for train_idx, test_idx in splitter.split(x, y):
        with threadpool_limits(limits=1, user_api="blas"):  # see BLAS_NOTE
            model = make_probe(kind, seed).fit(x[train_idx], y[train_idx])
        accuracies.append(float(np.mean(model.predict(x[test_idx]) == y[test_idx])))
        most = Counter(y[train_idx].tolist()).most_common(1)[0][0]
        majorities.append(float(np.mean(y[test_idx] == most)))
    return ProbeResult(
        target=target, kind=kind, accuracy=float(np.mean(accuracies)), accuracy_std=float(np.std(accuracies)),
        majority=float(np.mean(majorities)), uniform=1.0 / len(classes), classes=len(classes), samples=len(y),
        folds=folds, dropped_classes=dropped,
    )


def probe_split(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray, kind: str = "logreg", seed: int = 0) -> float:
    """Accuracy of a probe fitted on one split and tested on another (the action protocol: held-out actors)."""
    with threadpool_limits(limits=1, user_api="blas"):  # see BLAS_NOTE
        model = make_probe(kind, seed).fit(np.asarray(x_train, np.float32), np.asarray(y_train).astype(str))
    return float(np.mean(model.predict(np.asarray(x_test, np.float32)) == np.asarray(y_test).astype(str)))


def conditional_baseline(condition: np.ndarray, y: np.ndarray, folds: int = 5, seed: int = 0) -> float:
    """Accuracy of predicting ``y`` from a discrete ``condition`` alone (the training folds' most frequent ``y``
    for each condition value), on the same stratified folds as :func:`probe_cv`. For identity from the action
    label this says how much of a probe's success an actor/action correlation could explain."""
    y = np.asarray(y).astype(str)
    condition = np.asarray(condition).astype(str)
    keep = _keep_classes_with(y, folds)
    y, condition = y[keep], condition[keep]
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    scores = []
    for train_idx, test_idx in splitter.split(condition.reshape(-1, 1), y):
        overall = Counter(y[train_idx].tolist()).most_common(1)[0][0]
        best: dict[str, str] = {}
        for value in set(condition[train_idx].tolist()):
            best[value] = Counter(y[train_idx][condition[train_idx] == value].tolist()).most_common(1)[0][0]
        predicted = np.array([best.get(c, overall) for c in condition[test_idx].tolist()])
        scores.append(float(np.mean(predicted == y[test_idx])))
    return float(np.mean(scores))


def pixel_features(clips: np.ndarray, size: int = 16) -> np.ndarray:
    """A raw-pixel reference representation: each clip's mean frame, resized to ``size × size``, flattened ->
    float32 ``[N, 3 * size * size]``. Probing it shows how visible an attribute is in the video itself."""
    out = []
    for clip in clips:  # one clip at a time: [T, 3, H, W] uint8
        frame = torch.as_tensor(np.asarray(clip)).float().mean(dim=0, keepdim=True) / 255.0  # [1, 3, H, W]
        small = F.interpolate(frame, size=(size, size), mode="area")
        out.append(small.flatten().numpy())
    return np.stack(out).astype(np.float32)
