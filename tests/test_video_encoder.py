"""``VideoEncoder``: a scikit-learn transformer over real video files, inside a Pipeline."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.ensemble import RandomForestClassifier
from sklearn.pipeline import Pipeline

from tinyact.classifiers.video_encoder import VideoEncoder
from tinyact.data.layouts import read_kinetics
from tinyact.data.manifest import Manifest
from tinyact.data.video import ClipSampling, VideoDecodeError
from tinyact.models.checkpoint import save_model
from tinyact.models.factory import build_autoencoder
from tinyact.training.extract import extract_latents

pytestmark = pytest.mark.usefixtures("one_thread")

SMALL = {"channels": [8, 16, 32, 64]}


@pytest.fixture(scope="module")
def videos(tiny_synth):
    entries, _ = read_kinetics(tiny_synth)
    manifest = Manifest(entries, tiny_synth)
    paths = [str(manifest.resolve(e)) for e in entries]
    return manifest, paths, np.array([e.label for e in entries]), np.array([e.split for e in entries])


def test_pipeline_with_a_random_forest_on_video_paths(videos):
    _, paths, labels, splits = videos
    train, test = splits != "test", splits == "test"
    pipe = Pipeline([
        ("enc", VideoEncoder(checkpoint=None, size=32, frames=8, model_overrides=SMALL, batch_size=4)),
        ("clf", RandomForestClassifier(n_estimators=30, random_state=0)),
    ])
    pipe.fit([p for p, keep in zip(paths, train, strict=True) if keep], labels[train])
    predicted = pipe.predict([p for p, keep in zip(paths, test, strict=True) if keep])
    assert predicted.shape == (test.sum(),) and set(predicted) <= set(labels)
    assert pipe.score([p for p, keep in zip(paths, train, strict=True) if keep], labels[train]) == 1.0
    encoder = pipe.named_steps["enc"]
    assert encoder.n_features_out_ == 1024 and len(encoder.get_feature_names_out()) == 1024
    assert len(encoder.encoder_hash_) == 16
    # scikit-learn conventions: params round-trip through clone, same seed -> same features
    twin = clone(encoder).fit(paths[:2])
    np.testing.assert_allclose(twin.transform(paths[:2]), encoder.transform(paths[:2]), rtol=1e-5, atol=1e-6)


def test_checkpoint_gives_the_same_rows_as_tinyact_extract(videos, tmp_path):
    manifest, paths, _, _ = videos
    torch.manual_seed(3)
    model = build_autoencoder("ae2d", "fast", num_frames=8, input_size=32, channels=(8, 16, 16, 32))
    save_model(tmp_path / "m.pt", model)
    encoder = VideoEncoder(checkpoint=tmp_path / "m.pt").fit(paths)
    assert encoder.sampling_.size == 32 and encoder.sampling_.num_frames == 8  # taken from the model file
    rows = encoder.transform(paths[:5])
    assert rows.dtype == np.float32 and rows.shape == (5, 1024)
    sub = Manifest(manifest.entries[:5], manifest.root)
    reference = extract_latents(tmp_path / "m.pt", sub, ClipSampling(num_frames=8, size=32), tmp_path / "l.npz")
    np.testing.assert_allclose(rows, reference.latents, rtol=1e-4, atol=1e-5)


def test_fit_can_train_the_encoder_and_bad_files_raise(videos, tmp_path):
    _, paths, _, _ = videos
    encoder = VideoEncoder(checkpoint=None, size=32, frames=8, model_overrides=SMALL, train_epochs=1, batch_size=8,
                           work_dir=tmp_path / "run").fit(paths[:6])
    assert (tmp_path / "run" / "model.pt").is_file()
    assert encoder.transform(paths[6:8]).shape == (2, 1024)
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00" * 100)
    with pytest.raises(VideoDecodeError, match="junk.mp4"):
        encoder.transform([paths[0], str(junk)])
