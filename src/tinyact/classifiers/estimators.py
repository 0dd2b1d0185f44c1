"""The classical classifiers of the paper's Table 1 as scikit-learn pipelines, and their default grids.

Every kind is a :class:`~sklearn.pipeline.Pipeline` whose last step is named ``clf`` (scaling first where the
model is sensitive to feature scale), so parameters are addressed as ``clf__<name>`` everywhere: in
:data:`GRIDS`, in a ``--grid`` YAML file and as factory keyword arguments::

    FACTORIES["rf"](seed=1, clf__n_estimators=50).fit(x, y)

Why these choices:

* ``svm``: an RBF SVC is scale-sensitive, so a :class:`StandardScaler` comes first. No
  ``probability=True`` (Platt scaling costs five extra fits and is deprecated in scikit-learn 1.9);
  top-5 and the cloud's scores come from a softmax of the decision values.
* ``rf``, ``dt``, ``xgboost``: trees split on thresholds, so scaling changes nothing; none is added.
* ``n_jobs=1`` everywhere: the grid search parallelises (or not) on its own, and a shared machine should not
  be flooded with threads by default.

Other stages add kinds (e.g. the residual MLP as ``mlp``) by inserting into :data:`FACTORIES`/:data:`GRIDS`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sklearn.ensemble import RandomForestClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC
from sklearn.tree import DecisionTreeClassifier

from tinyact.errors import ConfigError


def _pipeline(steps: list[tuple[str, Any]], params: dict[str, Any]) -> Pipeline:
    pipe = Pipeline(steps)
    if params:
        try:
            pipe.set_params(**params)
        except ValueError as error:
            raise ConfigError(f"invalid classifier parameter: {error}") from None
    return pipe


def make_svm(seed: int = 0, **params: Any) -> Pipeline:
    """StandardScaler + SVC (RBF kernel)."""
    return _pipeline(
        [("scale", StandardScaler()), ("clf", SVC(kernel="rbf", C=10.0, gamma="scale", random_state=seed))], params
    )


def make_rf(seed: int = 0, **params: Any) -> Pipeline:
    """Random forest (300 trees, sqrt features per split)."""
    return _pipeline(
        [("clf", RandomForestClassifier(n_estimators=300, max_features="sqrt", random_state=seed, n_jobs=1))], params
    )


def make_xgboost(seed: int = 0, **params: Any) -> Pipeline:
    """Gradient-boosted trees (XGBoost, histogram method). Labels must be ``0..C-1`` with every class present."""
    from xgboost import XGBClassifier  # imported lazily: it loads a large shared library

    clf = XGBClassifier(
        tree_method="hist", n_estimators=200, max_depth=4, learning_rate=0.1, subsample=0.8, colsample_bytree=0.5,
        n_jobs=1, random_state=seed, verbosity=0,
    )
    return _pipeline([("clf", clf)], params)


def make_dt(seed: int = 0, **params: Any) -> Pipeline:
    """A single decision tree."""
    return _pipeline([("clf", DecisionTreeClassifier(random_state=seed))], params)


def make_mlp(seed: int = 0, **params: Any) -> Pipeline:
    """The paper's standalone residual MLP on latents (:class:`~tinyact.classifiers.mlp.MLPResNetEstimator`;
    it standardises its input itself, Adam, lr 1e-5 -> 1e-6, early stopping on a held-out part)."""
    from tinyact.classifiers.mlp import MLPResNetEstimator  # imported lazily: it loads torch

    return _pipeline([("clf", MLPResNetEstimator(seed=seed))], params)


FACTORIES: dict[str, Callable[..., Any]] = {
    "svm": make_svm,
    "rf": make_rf,
    "xgboost": make_xgboost,
    "dt": make_dt,
    "mlp": make_mlp,
}

# Default grids: small on purpose (the paper gives no grid; 10-fold CV multiplies every point by ten).
GRIDS: dict[str, dict[str, list[Any]]] = {
    "svm": {"clf__C": [1.0, 10.0, 100.0], "clf__gamma": ["scale", 1e-4]},
    "rf": {"clf__n_estimators": [300], "clf__max_features": ["sqrt", 0.1]},
    "xgboost": {"clf__max_depth": [3, 6], "clf__learning_rate": [0.1]},
    "dt": {"clf__max_depth": [None, 10, 20], "clf__criterion": ["gini", "entropy"]},
    # One point: early stopping on a held-out part already chooses the training length.
    "mlp": {},
}


def kinds() -> list[str]:
    """Classifier kinds known now (including those other stages registered)."""
    return list(FACTORIES)


def make_estimator(kind: str, seed: int = 0, **params: Any) -> Any:
    """A fresh estimator of ``kind``; a clear error for an unknown kind."""
    if kind not in FACTORIES:
        raise ConfigError(f"unknown classifier {kind!r}: use one of {', '.join(FACTORIES)}")
    return FACTORIES[kind](seed=seed, **params)


def normalise_grid(grid: dict[str, Any]) -> dict[str, list[Any]]:
    """``{"C": [1, 10]}`` -> ``{"clf__C": [1, 10]}``; scalar values become one-element lists."""
    result = {}
    for name, values in grid.items():
        key = name if "__" in name else f"clf__{name}"
        result[key] = list(values) if isinstance(values, list | tuple) else [values]
    return result
