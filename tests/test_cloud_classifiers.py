"""Every classifier kind ``tinyact classify fit`` makes (``tinyact.classifiers.estimators.FACTORIES``: SVM, RF,
XGBoost, DT and the residual MLP) is loaded and served, and hot-swapped in turn."""

from __future__ import annotations

import httpx
import numpy as np

from benchmarks.cloud_fixtures import clip_message, toy_latents
from tinyact.classifiers import estimators
from tinyact.classifiers.saved import save_classifier
from tinyact.cloud.server import serve_in_background

DIM = 32
LABELS = ["walking", "running", "waving"]
FAST = {"rf": {"clf__n_estimators": 10}, "xgboost": {"clf__n_estimators": 10}, "mlp": {"clf__max_epochs": 3}}


def test_every_classify_fit_kind_is_served(tmp_path):
    y = np.repeat(np.arange(len(LABELS)), 20)
    x = toy_latents(y, DIM, len(LABELS), noise=0.3)
    folders = {}
    for kind, factory in estimators.FACTORIES.items():
        estimator = factory(**FAST.get(kind, {})).fit(x, y)
        folders[kind] = save_classifier(tmp_path / kind, estimator, label_names=LABELS, latent_dim=DIM,
                                        encoder_hash="enc", kind=kind).path
    assert {"svm", "rf", "xgboost", "dt"} <= set(folders)
    first, *others = folders
    with serve_in_background(folders[first], tmp_path / "c.db", admin_token="adm") as cloud:
        key = cloud.add_device("edge-1")
        for kind in [first, *others]:
            if kind != first:
                swapped = httpx.post(f"{cloud.url}/v1/admin/model", json={"path": str(folders[kind])},
                                     headers=cloud.admin_headers(), timeout=120)
                assert swapped.status_code == 200, (kind, swapped.text)
            clips = [clip_message(v) for v in toy_latents([0, 1, 2], DIM, len(LABELS), noise=0.3)]
            response = httpx.post(f"{cloud.url}/v1/clips", json={"clips": clips},
                                  headers={"Authorization": f"Bearer {key}"}, timeout=60)
            assert response.status_code == 200, (kind, response.text)
            results = response.json()["results"]
            assert all(r["model_version"].startswith(f"{kind}-") and len(r["top5"]) == 3 for r in results)
            assert abs(sum(t["score"] for t in results[0]["top5"]) - 1) < 1e-3
            if kind != "mlp":  # three MLP epochs at the paper's learning rate learn nothing; the others separate the blobs
                assert [r["label"] for r in results] == LABELS, kind
