"""Test-set metrics of a classifier: top-1, top-5, macro precision/recall/F1, per-class report, confusion PNG.

``evaluate(estimator, x, y, label_names, out_dir)`` works with any fitted estimator whose ``predict`` returns
label indices into ``label_names``; the predicted label is the top class score, the rule the cloud serves with (a Pipeline, an XGBClassifier, a :class:`SavedClassifier` …). Top-5 needs
class scores: ``predict_proba`` where the estimator has it, else ``decision_function`` (an SVM without
probability estimates; ranking by decision values is what top-k needs). With ``out_dir`` it also writes
``report.json`` (everything), ``report.txt`` (scikit-learn's per-class table) and ``confusion.png``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import classification_report, confusion_matrix, precision_recall_fscore_support

logger = logging.getLogger(__name__)


def class_scores(estimator: Any, x: np.ndarray, n_classes: int) -> np.ndarray | None:
    """``[N, n_classes]`` scores (higher = more likely; a column per label index) or ``None`` if the estimator
    gives none. Columns of classes the estimator never saw are ``-inf``-like (lowest)."""
    if hasattr(estimator, "predict_proba"):
        scores = np.asarray(estimator.predict_proba(x), dtype=np.float64)
    elif hasattr(estimator, "decision_function"):
        scores = np.asarray(estimator.decision_function(x), dtype=np.float64)
        if scores.ndim == 1:  # binary: one column, positive = second class
            scores = np.stack([-scores, scores], axis=1)
    else:
        return None
    classes = getattr(estimator, "classes_", None)
    if classes is None:
        classes = np.arange(scores.shape[1])
    classes = np.asarray(classes, dtype=np.int64)
    full = np.full((len(x), n_classes), -1e30, dtype=np.float64)
    full[:, classes] = scores
    return full


def predict_labels(estimator: Any, x: np.ndarray, n_classes: int) -> np.ndarray:
    """Label indices as the cloud serves them: the highest class score (an SVM's own ``predict`` votes one
    versus one and can disagree with its decision values on a tie); estimators without scores use ``predict``."""
    scores = class_scores(estimator, x, n_classes)
    return scores.argmax(axis=1) if scores is not None else np.asarray(estimator.predict(x), dtype=np.int64)


def top_k_accuracy(scores: np.ndarray, y: np.ndarray, k: int) -> float:
    """Fraction of rows whose true label is among the ``k`` highest scores."""
    k = min(k, scores.shape[1])
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return float((top == np.asarray(y)[:, None]).any(axis=1).mean())


def evaluate(
    estimator: Any, x: np.ndarray, y: np.ndarray, label_names: list[str], out_dir: str | Path | None = None
) -> dict[str, Any]:
    """Metrics of ``estimator`` on ``(x, y)``: ``top1``, ``top5`` (when scores exist), macro ``precision``,
    ``recall``, ``f1`` (over the classes present in ``y``), ``n``, ``per_class`` and ``confusion``."""
    x = np.asarray(x, dtype=np.float32)
    y = np.asarray(y, dtype=np.int64)
    n_classes = len(label_names)
    scores = class_scores(estimator, x, n_classes)
    pred = scores.argmax(axis=1) if scores is not None else predict_labels(estimator, x, n_classes)
    present = np.unique(y)
    precision, recall, f1, _ = precision_recall_fscore_support(
        y, pred, labels=present, average="macro", zero_division=0
    )
    metrics: dict[str, Any] = {"top1": float((pred == y).mean()) if len(y) else 0.0}
    if scores is not None:
        metrics["top5"] = top_k_accuracy(scores, y, 5)
    metrics.update({"precision": float(precision), "recall": float(recall), "f1": float(f1), "n": int(len(y))})
    labels = np.arange(n_classes)
    report = classification_report(
        y, pred, labels=labels, target_names=list(label_names), output_dict=True, zero_division=0
    )
    metrics["per_class"] = {
        name: {k: float(v) for k, v in report[name].items()} for name in label_names if name in report
    }
    matrix = confusion_matrix(y, pred, labels=labels)
    metrics["confusion"] = matrix.tolist()
    if out_dir is not None:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "report.json").write_text(json.dumps(metrics, indent=2))
        (out_dir / "report.txt").write_text(
            classification_report(y, pred, labels=labels, target_names=list(label_names), zero_division=0)
        )
        plot_confusion(matrix, label_names, out_dir / "confusion.png", title=f"top-1 {metrics['top1']:.3f}")
    return metrics


def plot_confusion(matrix: np.ndarray, label_names: list[str], out: str | Path, title: str = "") -> Path:
    """Row-normalised confusion matrix (true label down, predicted across) with counts, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    matrix = np.asarray(matrix)
    rows = matrix.sum(axis=1, keepdims=True)
    share = np.divide(matrix, rows, out=np.zeros(matrix.shape, dtype=float), where=rows > 0)
    n = len(label_names)
    side = max(4.0, 0.45 * n + 2.0)
    fig, ax = plt.subplots(figsize=(side + 1, side))
    image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), label_names, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(n), label_names, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if n <= 30:
        for i in range(n):
            for j in range(n):
                if matrix[i, j]:
                    ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=7,
                            color="white" if share[i, j] > 0.5 else "black")
    ax.set_title(title)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    out = Path(out)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
