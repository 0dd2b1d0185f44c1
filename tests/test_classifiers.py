"""Classical classifiers on generated latents: every kind fits and predicts, folds shrink for tiny classes,
metrics and saved folders are right, mismatched latents are refused, and the CLI round trip works."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from benchmarks.cloud_fixtures import toy_latents
from tinyact.classifiers.estimators import FACTORIES, GRIDS, normalise_grid
from tinyact.classifiers.evaluate import evaluate, top_k_accuracy
from tinyact.classifiers.saved import ClassifierMismatchError, load_classifier
from tinyact.classifiers.search import choose_folds, fit_classifier
from tinyact.cli import app
from tinyact.errors import ConfigError
from tinyact.latents import LatentsFile

LABELS = ["clap", "jump", "run", "wave"]
DIM = 16
FAST = {"rf": {"n_estimators": [20]}, "xgboost": {"n_estimators": [15], "max_depth": [2]}, "svm": {"C": [1, 10]},
        "dt": {"max_depth": [None, 5]}}
runner = CliRunner()


def make_latents(per_split=(12, 4, 6), noise=0.5, seed=0, encoder_hash="enc-a", dim=DIM) -> LatentsFile:
    rows, labels, splits = [], [], []
    rng = np.random.default_rng(seed + 5)
    for split, n in zip(("train", "val", "test"), per_split, strict=True):
        y = np.repeat(np.arange(len(LABELS)), n)
        rows.append(toy_latents(y, dim, len(LABELS), seed=seed, noise=noise, rng=rng))
        labels += [LABELS[i] for i in y]
        splits += [split] * len(y)
    ids = [f"c{i}" for i in range(len(labels))]
    return LatentsFile(np.concatenate(rows), labels, LABELS, ids, splits, encoder_hash,
                       {"columns": {"actor": [str(i % 3) for i in range(len(labels))]}})


def test_factories_are_pipelines_with_a_clf_step():
    assert {"svm", "rf", "xgboost", "dt"} <= set(FACTORIES) and set(GRIDS) >= {"svm", "rf", "xgboost", "dt"}
    for kind, factory in FACTORIES.items():
        pipe = factory(seed=3)
        assert "clf" in pipe.named_steps, kind
        for name in GRIDS[kind]:
            pipe.set_params(**{name: GRIDS[kind][name][0]})  # every grid name addresses a real parameter
    assert "scale" in FACTORIES["svm"]().named_steps  # scaling where it matters
    assert FACTORIES["rf"](clf__n_estimators=7).named_steps["clf"].n_estimators == 7
    with pytest.raises(ConfigError):
        FACTORIES["dt"](clf__no_such_param=1)
    assert normalise_grid({"C": 1, "scale__with_mean": [False]}) == {"clf__C": [1], "scale__with_mean": [False]}


@pytest.mark.parametrize("kind", ["svm", "rf", "xgboost", "dt"])
def test_each_kind_fits_predicts_and_saves(tmp_path, kind):
    lf = make_latents()
    result = fit_classifier(lf, kind, tmp_path / kind, folds=3, grid=FAST[kind])
    points = int(np.prod([len(v) for v in FAST[kind].values()]))
    assert (result.folds, result.folds_note == "") == ((3, True) if points > 1 else (0, False))
    assert result.metrics["top1"] >= 0.9, result.metrics
    assert {"precision", "recall", "f1", "top5"} <= set(result.metrics)
    assert result.val_top1 is not None and result.best_params
    assert (tmp_path / kind / "confusion.png").stat().st_size > 1000
    saved = load_classifier(tmp_path / kind, latent_dim=DIM, encoder_hash="enc-a")
    test = lf.split("test")
    assert (saved.predict(test.latents) == result.estimator.predict(test.latents)).all()
    assert saved.metrics["top1"] == result.metrics["top1"]
    search = json.loads((tmp_path / kind / "search.json").read_text())
    assert len(search["candidates"]) == int(np.prod([len(v) for v in FAST[kind].values()]))


def test_folds_reduced_for_tiny_classes(tmp_path):
    lf = make_latents(per_split=(3, 2, 2))
    result = fit_classifier(lf, "dt", None, folds=10, grid={"max_depth": [None, 3]})
    assert result.folds == 3 and "3-fold used" in result.folds_note
    assert choose_folds(np.array([0, 0, 1]), 10)[0] == 0  # one clip of class 1: no CV at all
    assert choose_folds(np.array([0] * 12 + [1] * 12), 10) == (10, "")


def test_evaluate_metrics_by_hand():
    class Fixed:
        classes_ = np.array([0, 1, 2])

        def predict(self, x):
            return np.array([0, 1, 1, 2])

        def predict_proba(self, x):
            return np.array([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.3, 0.6, 0.1], [0.1, 0.2, 0.7]])

    metrics = evaluate(Fixed(), np.zeros((4, 2)), np.array([0, 1, 2, 2]), ["a", "b", "c"])
    assert metrics["top1"] == 0.75 and metrics["top5"] == 1.0
    assert metrics["confusion"] == [[1, 0, 0], [0, 1, 0], [0, 1, 1]]
    assert metrics["recall"] == pytest.approx((1 + 1 + 0.5) / 3)
    assert top_k_accuracy(np.array([[0.1, 0.5, 0.4]]), np.array([2]), 2) == 1.0
    assert top_k_accuracy(np.array([[0.1, 0.5, 0.4]]), np.array([2]), 1) == 0.0


def test_mismatched_latents_refused(tmp_path):
    lf = make_latents()
    fit_classifier(lf, "dt", tmp_path / "dt", folds=2, grid={"max_depth": [3]})
    with pytest.raises(ClassifierMismatchError, match="expects 16-d"):
        load_classifier(tmp_path / "dt", latent_dim=32)
    with pytest.raises(ClassifierMismatchError, match="encoder"):
        load_classifier(tmp_path / "dt", latent_dim=DIM, encoder_hash="enc-b")
    other = make_latents(dim=32).save(tmp_path / "wide.npz")
    result = runner.invoke(app, ["classify", "eval", "--model", str(tmp_path / "dt"), "--latents", str(other)])
    assert result.exit_code == 2 and "expects 16-d latents" in result.output
    other_enc = make_latents(encoder_hash="enc-b").save(tmp_path / "b.npz")
    result = runner.invoke(app, ["classify", "eval", "--model", str(tmp_path / "dt"), "--latents", str(other_enc)])
    assert result.exit_code == 2 and "refit it" in result.output


def test_cli_fit_eval_round_trip(tmp_path):
    latents = make_latents().save(tmp_path / "lat.npz")
    grid = tmp_path / "grid.yaml"
    grid.write_text("svm:\n  C: [1, 10]\n  gamma: [scale]\nrf:\n  n_estimators: [5]\n")
    out = tmp_path / "svm"
    result = runner.invoke(app, ["classify", "fit", "--latents", str(latents), "--model", "svm", "--out", str(out),
                                 "--folds", "3", "--grid", str(grid)])
    assert result.exit_code == 0, result.output
    info = json.loads((out / "classifier.json").read_text())
    assert info["kind"] == "svm" and info["latent_dim"] == DIM and info["encoder_hash"] == "enc-a"
    assert info["label_names"] == LABELS and info["version"].startswith("svm-")
    search = json.loads((out / "search.json").read_text())
    assert len(search["candidates"]) == 2 and search["folds"] == 3
    result = runner.invoke(app, ["classify", "eval", "--model", str(out), "--latents", str(latents),
                                 "--out", str(tmp_path / "ev")])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "ev" / "report.json").read_text())
    assert report["top1"] == pytest.approx(info["metrics"]["top1"]) and report["n"] == 24
    result = runner.invoke(app, ["classify", "fit", "--latents", str(latents), "--model", "knn", "--out", str(out)])
    assert result.exit_code == 2 and "unknown classifier" in result.output
