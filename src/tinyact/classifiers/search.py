"""Fit one classifier on a latents file: grid search with stratified k-fold CV on train, the final choice on
val, evaluation on test (the paper's protocol, k = 10 by default).

Procedure (:func:`fit_classifier`)::

    train ─► GridSearchCV(StratifiedKFold(k)) ─► the `top_val` best grid points by mean CV accuracy
          ─► each refitted on all of train, scored on val ─► best val accuracy wins (ties: better CV rank)
    test  ─► evaluate(): top-1, top-5, macro P/R/F1, per-class report, confusion PNG

``k`` is lowered to the smallest number of training clips of any class when that is below ``folds``
(stratified k-fold needs ``k`` clips of every class), and the result says so in ``folds_note``; with fewer than
two clips in some class there is no CV and val alone chooses. Without a val split, CV alone chooses.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, ParameterGrid, StratifiedKFold

from tinyact.classifiers.estimators import GRIDS, make_estimator, normalise_grid
from tinyact.classifiers.evaluate import evaluate, predict_labels
from tinyact.classifiers.saved import SavedClassifier, save_classifier, to_jsonable
from tinyact.errors import DatasetError
from tinyact.latents import LatentsFile

logger = logging.getLogger(__name__)


@dataclass
class FitResult:
    """What :func:`fit_classifier` chose and measured."""

    kind: str
    estimator: Any
    best_params: dict[str, Any]
    folds: int
    folds_note: str
    candidates: list[dict[str, Any]]
    metrics: dict[str, Any]
    val_top1: float | None
    fit_seconds: float
    saved: SavedClassifier | None = None
    label_names: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """JSON-friendly record (no estimator, no per-class detail)."""
        return {
            "kind": self.kind,
            "best_params": to_jsonable(self.best_params),
            "folds": self.folds,
            "folds_note": self.folds_note,
            "val_top1": self.val_top1,
            "fit_seconds": round(self.fit_seconds, 2),
            "candidates": to_jsonable(self.candidates),
            "metrics": {k: v for k, v in self.metrics.items() if k not in ("per_class", "confusion")},
        }



def choose_folds(y: np.ndarray, folds: int) -> tuple[int, str]:
    """The number of CV folds to use for labels ``y`` and a note when it is fewer than asked (0 = no CV)."""
    counts = np.bincount(y)
    counts = counts[counts > 0]
    smallest = int(counts.min()) if len(counts) else 0
    if smallest >= folds:
        return folds, ""
    if smallest < 2:
        return 0, f"no cross-validation: a class has only {smallest} training clip(s); validation split chooses"
    return smallest, f"{folds}-fold CV asked, {smallest}-fold used: the smallest class has {smallest} training clips"


def fit_classifier(
    latents: LatentsFile,
    kind: str,
    out: Path | None = None,
    *,
    folds: int = 10,
    grid: dict | None = None,
    seed: int = 0,
    n_jobs: int = 1,
    top_val: int = 3,
) -> FitResult:
    """Grid-search ``kind`` on the train split of ``latents``, pick on val, evaluate on test.

    ``grid`` overrides the default grid of that kind (:data:`~tinyact.classifiers.estimators.GRIDS`);
    names without ``__`` address the classifier step (``C`` = ``clf__C``). With ``out`` the chosen model is
    saved there with :func:`~tinyact.classifiers.saved.save_classifier` (plus ``search.json``,
    ``report.json/txt`` and ``confusion.png``).
    """
    started = time.perf_counter()
    train, val, test = latents.split("train"), latents.split("val"), latents.split("test")
    if len(train) == 0:
        raise DatasetError("the latents file has no train split; nothing to fit on")
    if len(test) == 0:
        raise DatasetError("the latents file has no test split; nothing to evaluate on")
    x, y = train.latents, train.y
    missing = sorted(set(range(len(latents.label_names))) - set(np.unique(y).tolist()))
    if missing:
        names = [latents.label_names[i] for i in missing]
        if kind == "xgboost":
            raise DatasetError(f"xgboost needs training clips of every class; none for {names[:5]}")
        logger.warning("%s: no training clips for %d class(es) %s; they can never be predicted", kind, len(names), names[:5])

    param_grid = normalise_grid(grid) if grid is not None else dict(GRIDS.get(kind, {}))
    base = make_estimator(kind, seed=seed)
    points = list(ParameterGrid(param_grid)) if param_grid else [{}]
    k, note = choose_folds(y, folds)
    if note:
        logger.warning("%s: %s", kind, note)

    candidates: list[dict[str, Any]] = []
    if k >= 2 and len(points) > 1:
        search = GridSearchCV(
            base, param_grid, cv=StratifiedKFold(k, shuffle=True, random_state=seed), scoring="accuracy",
            n_jobs=n_jobs, refit=False, error_score="raise",
        )
        search.fit(x, y)
        cv = search.cv_results_
        order = np.argsort(cv["rank_test_score"], kind="stable")
        candidates = [
            {"params": cv["params"][i], "cv_top1": float(cv["mean_test_score"][i]), "cv_std": float(cv["std_test_score"][i])}
            for i in order
        ]
    else:
        candidates = [{"params": p, "cv_top1": None, "cv_std": None} for p in points]
        if len(points) == 1 and k >= 2:
            k, note = 0, "one grid point: nothing to cross-validate"

    shortlist = candidates[: max(1, top_val)] if len(val) else candidates[:1]
    best_estimator, best_val, best_params = None, None, None
    for candidate in shortlist:
        estimator = clone(base).set_params(**candidate["params"]).fit(x, y)
        if len(val):
            predicted = predict_labels(estimator, val.latents, len(latents.label_names))
            candidate["val_top1"] = float((predicted == val.y).mean())
        score = candidate.get("val_top1")
        if best_estimator is None or (score is not None and score > best_val):
            best_estimator, best_val, best_params = estimator, score, candidate["params"]
    if not len(val):
        note = (note + "; " if note else "") + "no validation split: cross-validation alone chose"

    report_dir = Path(out) if out is not None else None
    metrics = evaluate(best_estimator, test.latents, test.y, latents.label_names, out_dir=report_dir)
    metrics["folds"] = k
    elapsed = time.perf_counter() - started
    result = FitResult(
        kind=kind, estimator=best_estimator, best_params=best_params or {}, folds=k, folds_note=note,
        candidates=candidates, metrics=metrics, val_top1=best_val, fit_seconds=elapsed,
        label_names=list(latents.label_names),
    )
    logger.info(
        "%s: test top-1 %.3f (val %s, %s-fold CV, params %s, %.1f s)", kind, metrics["top1"],
        "-" if best_val is None else f"{best_val:.3f}", k, best_params, elapsed,
    )
    if out is not None:
        saved_metrics = {k_: v for k_, v in metrics.items() if k_ not in ("per_class", "confusion")}
        saved_metrics.update(best_params=to_jsonable(best_params), val_top1=best_val, folds_note=note)
        result.saved = save_classifier(
            out, best_estimator, label_names=latents.label_names, latent_dim=latents.dim,
            encoder_hash=latents.encoder_hash, kind=kind, metrics=saved_metrics,
        )
        (Path(out) / "search.json").write_text(json.dumps(result.summary(), indent=2))
    return result
