"""The shared contracts: wire format, latents file, saved classifier, model files."""

from __future__ import annotations

import base64

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression

from tinyact.classifiers.saved import ClassifierMismatchError, load_classifier, save_classifier
from tinyact.errors import DatasetError, TinyActError
from tinyact.latents import LatentsFile
from tinyact.models import VideoAutoEncoder3D
from tinyact.models.checkpoint import load_model, save_model
from tinyact.wire import ClipIn, EncodedLatent, WireFormatError, decode_latent, encode_latent


@pytest.mark.parametrize(("dtype", "tolerance", "size"), [("float32", 0, 4096), ("float16", 1e-3, 2048), ("int8", 2e-2, 1024)])
def test_latent_round_trip(dtype, tolerance, size):
    vector = np.random.default_rng(0).normal(size=1024).astype(np.float32)
    encoded = encode_latent(vector, dtype)
    assert len(base64.b64decode(encoded.data)) == size
    decoded = decode_latent(encoded)
    assert decoded.dtype == np.float32 and decoded.shape == (1024,)
    assert np.max(np.abs(decoded - vector)) <= tolerance * np.max(np.abs(vector)) + 1e-7


def test_plain_json_latent():
    assert decode_latent([0.5, -1.0]).tolist() == [0.5, -1.0]


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (EncodedLatent(dtype="float32", data="not base64!"), "not valid base64"),
        (EncodedLatent(dtype="float32", data=base64.b64encode(b"abc").decode()), "whole number"),
        (EncodedLatent(dtype="int8", data=base64.b64encode(b"ab").decode()), "needs `scale`"),
        (EncodedLatent(dtype="float32", data=base64.b64encode(np.array([np.nan], "<f4").tobytes()).decode()), "NaN"),
        ([], "non-empty"),
        ([1.0, float("inf")], "NaN or Inf"),
    ],
)
def test_bad_latents_are_rejected(payload, message):
    with pytest.raises(WireFormatError, match=message):
        decode_latent(payload)


def test_clip_message_rejects_unknown_fields_and_bad_camera():
    good = {"clip_id": "6f1c1f4e-9f0e-4c51-9c1e-2b8a3f1d2c3b", "camera_id": "cam-1",
            "captured_at": "2026-11-24T10:00:00Z", "latent": [0.1, 0.2]}
    ClipIn.model_validate(good)
    with pytest.raises(ValueError):
        ClipIn.model_validate({**good, "frames": "raw video"})
    with pytest.raises(ValueError):
        ClipIn.model_validate({**good, "camera_id": "../etc"})


def _latents(n=30, dim=8, classes=("a", "b", "c")):
    rng = np.random.default_rng(1)
    labels = np.array([classes[i % len(classes)] for i in range(n)])
    centres = {c: rng.normal(size=dim) * 3 for c in classes}
    x = np.stack([centres[label] + rng.normal(size=dim) for label in labels])
    splits = np.array(["train" if i < n * 2 // 3 else "test" for i in range(n)])
    return LatentsFile(x, labels, list(classes), [f"c{i}" for i in range(n)], splits, "enc123",
                       {"columns": {"actor": [str(i % 4) for i in range(n)]}})


def test_latents_file_round_trip(tmp_path):
    lf = _latents()
    lf.save(tmp_path / "l.npz")
    back = LatentsFile.load(tmp_path / "l.npz")
    np.testing.assert_array_equal(back.latents, lf.latents)
    assert back.label_names == ["a", "b", "c"] and back.encoder_hash == "enc123"
    test = back.split("test")
    assert len(test) == 10 and set(test.splits) == {"test"} and len(test.column("actor")) == 10
    assert back.y.dtype == np.int64 and back.y[:3].tolist() == [0, 1, 2]
    with pytest.raises(DatasetError, match="not found"):
        LatentsFile.load(tmp_path / "missing.npz")
    (tmp_path / "text.npz").write_text("a,b\n")  # e.g. a CSV saved under the wrong name
    with pytest.raises(DatasetError, match="not an .npz archive") as error:
        LatentsFile.load(tmp_path / "text.npz")
    assert "pickle" not in str(error.value)  # numpy's advice to load it unsafely is not passed on


def test_saved_classifier_round_trip_and_checks(tmp_path):
    lf = _latents()
    train = lf.split("train")
    # Fit without class "c" to check that probabilities still get one column per label name.
    keep = train.labels != "c"
    estimator = LogisticRegression(max_iter=500).fit(train.latents[keep], train.y[keep])
    save_classifier(tmp_path / "clf", estimator, label_names=lf.label_names, latent_dim=lf.dim,
                    encoder_hash=lf.encoder_hash, kind="logreg", metrics={"top1": 1.0})
    loaded = load_classifier(tmp_path / "clf", latent_dim=8, encoder_hash="enc123")
    assert loaded.version.startswith("logreg-")
    proba = loaded.predict_proba(lf.latents)
    assert proba.shape == (30, 3) and np.allclose(proba.sum(axis=1), 1) and np.all(proba[:, 2] == 0)
    with pytest.raises(ClassifierMismatchError, match="expects 8-d latents, got 1024-d"):
        load_classifier(tmp_path / "clf", latent_dim=1024)
    with pytest.raises(ClassifierMismatchError, match="encoder"):
        load_classifier(tmp_path / "clf", encoder_hash="other")
    (tmp_path / "clf" / "model.joblib").write_bytes(b"tampered")
    with pytest.raises(TinyActError, match="does not match"):
        load_classifier(tmp_path / "clf")


def test_model_file_round_trip(tmp_path):
    model = VideoAutoEncoder3D.from_preset("fast", input_size=32, num_frames=4).eval()
    weights_hash = save_model(tmp_path / "m.pt", model)
    loaded, info = load_model(tmp_path / "m.pt")
    assert info["hash"] == weights_hash and info["config"]["preset"] == "fast"
    x = torch.randn(2, 4, 3, 32, 32)
    torch.testing.assert_close(loaded.encode(x), model.encode(x))
    (tmp_path / "bad.pt").write_bytes(b"nope")
    with pytest.raises(TinyActError, match="not a TinyAct model file"):
        load_model(tmp_path / "bad.pt")
