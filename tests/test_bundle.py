"""Bundles (:mod:`tinyact.classifiers.bundle`): write and load round trip (zoo reference and copied encoder
file), the encoder-hash check, the model card's random-encoder warning, and the commands that take a bundle
(`cloud serve --model`, `cloud model activate`, `edge init --bundle`)."""

from __future__ import annotations

import shutil

import httpx
import pytest
import yaml
from typer.testing import CliRunner

from benchmarks.cloud_fixtures import fit_toy_classifier
from tinyact.classifiers.bundle import (
    BundleError,
    classifier_folder,
    load_bundle,
    model_card,
    write_bundle,
)
from tinyact.cli import app
from tinyact.cloud.registry import ModelRegistry
from tinyact.cloud.server import serve_in_background
from tinyact.edge.config import EdgeConfig
from tinyact.errors import TinyActError
from tinyact.models.autoencoder3d import VideoAutoEncoder3D
from tinyact.models.checkpoint import save_model
from tinyact.zoo import get_entry

runner = CliRunner()
LABELS = ("clap", "wave", "walk")
PRE = {"frames": 16, "size": 64, "normalization": "imagenet", "sampling": "uniform"}


@pytest.fixture
def zoo_hash() -> str:
    return get_entry("everyday-64").encoder_hash


def test_zoo_bundle_round_trip(tmp_path, zoo_hash):
    clf = fit_toy_classifier(tmp_path / "clf", labels=LABELS, latent_dim=16, per_class=5, encoder_hash=zoo_hash)
    bundle = write_bundle(tmp_path / "b", encoder="zoo:everyday-64", classifier=clf.path, preprocessing=PRE,
                          accuracy={"top1": 0.9})
    manifest = yaml.safe_load((tmp_path / "b" / "bundle.yaml").read_text())
    assert manifest["encoder"] == {"spec": "zoo:everyday-64", "hash": zoo_hash,
                                   "weights_sha256": get_entry("everyday-64").weights_sha256}
    assert not (tmp_path / "b" / "encoder.pt").exists()  # a zoo reference, not a copy of the weights
    assert {"MODEL_CARD.md", "metrics.json", "classifier"} <= {p.name for p in (tmp_path / "b").iterdir()}
    again = load_bundle(tmp_path / "b")
    assert again.classifier.version == clf.version == bundle.classifier.version
    assert again.label_names == list(LABELS) and again.preprocessing == PRE and again.encoder_hash == zoo_hash
    assert again.encoder_spec == "zoo:everyday-64" and "frames_per_clip: 16" in again.edge_yaml()
    assert classifier_folder(tmp_path / "b") == tmp_path / "b" / "classifier"
    assert classifier_folder(clf.path) == clf.path  # a plain classifier folder passes through
    write_bundle(tmp_path / "b", encoder="zoo:everyday-64", classifier=clf.path, preprocessing=PRE)  # rewritten
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    with pytest.raises(BundleError, match="not a bundle"):
        write_bundle(tmp_path / "taken", encoder="zoo:everyday-64", classifier=clf.path, preprocessing=PRE)


def test_file_encoder_is_copied_and_checked(tmp_path):
    encoder_hash = save_model(tmp_path / "ae.pt", VideoAutoEncoder3D(num_frames=8, input_size=32, channels=(4, 4, 4, 4),
                                                                     latent_dim=16, seed_channels=2))
    clf = fit_toy_classifier(tmp_path / "clf", labels=LABELS, latent_dim=16, per_class=5, encoder_hash=encoder_hash)
    bundle = write_bundle(tmp_path / "b", encoder=tmp_path / "ae.pt", classifier=clf.path,
                          preprocessing=dict(PRE, frames=8, size=32))
    assert (tmp_path / "b" / "encoder.pt").is_file()
    assert bundle.encoder_spec == str((tmp_path / "b" / "encoder.pt").resolve())
    (tmp_path / "ae.pt").unlink()  # the bundle does not depend on the original file
    assert load_bundle(tmp_path / "b").encoder_hash == encoder_hash
    (tmp_path / "b" / "encoder.pt").write_bytes(b"changed")
    with pytest.raises(BundleError, match="changed after the bundle was written"):
        load_bundle(tmp_path / "b")


def test_mismatched_bundle_is_refused_with_both_hashes(tmp_path, zoo_hash, monkeypatch):
    wrong = fit_toy_classifier(tmp_path / "wrong", labels=LABELS, latent_dim=16, per_class=5, encoder_hash="other-encoder")
    with pytest.raises(BundleError, match="other-encoder"):
        write_bundle(tmp_path / "never", encoder="zoo:everyday-64", classifier=wrong.path, preprocessing=PRE)
    good = fit_toy_classifier(tmp_path / "good", labels=LABELS, latent_dim=16, per_class=5, encoder_hash=zoo_hash)
    write_bundle(tmp_path / "b", encoder="zoo:everyday-64", classifier=good.path, preprocessing=PRE)
    shutil.rmtree(tmp_path / "b" / "classifier")  # someone swaps in a classifier of another encoder
    shutil.copytree(wrong.path, tmp_path / "b" / "classifier")
    with pytest.raises(BundleError) as error:
        load_bundle(tmp_path / "b")
    message = str(error.value)
    assert "other-encoder" in message and zoo_hash in message and "meaningless" in message
    with pytest.raises(TinyActError, match="meaningless"):
        ModelRegistry().load(tmp_path / "b")
    result = runner.invoke(app, ["cloud", "serve", "--model", str(tmp_path / "b"), "--db", str(tmp_path / "c.db")])
    assert result.exit_code == 2 and "meaningless" in result.output and "Traceback" not in result.output
    assert "not a bundle" in str(pytest.raises(BundleError, load_bundle, tmp_path / "good").value)


def test_model_card_warns_when_best_ties_the_random_encoder():
    row = {"top1": 0.5, "top5": 1.0, "f1": 0.5, "val_top1": 0.5}
    metrics = {"classifiers": {"svm": row}, "best": {"classifier": "svm", "top1": 0.5},
               "baselines": {"random_encoder": {"top1": 0.5, "classifier": "svm"},
                             "raw_pixels": {"top1": 0.4, "classifier": "svm"}},
               "classes": ["a", "b"], "n_train": 6, "n_val": 2, "n_test": 2, "config": {"folds": 2, "seed": 0},
               "encoder": {"hash": "h", "frames": 16, "size": 64}}
    from tinyact.classifiers.bundle import _table1_accuracy

    accuracy = _table1_accuracy(metrics)
    assert accuracy["beats_random_encoder"] is False
    card = model_card(metrics, accuracy, "zoo:everyday-64")
    assert card.index("WARNING") < card.index("## Data") and "does not beat the random-encoder baseline" in card
    assert "**val**" in card and "**test**" in card and "Random encoder" in card and "Raw pixels" in card
    better = _table1_accuracy({**metrics, "classifiers": {"svm": dict(row, top1=0.9)}})
    assert "WARNING" not in model_card(metrics, better, "zoo:everyday-64")


def test_cloud_and_edge_take_a_bundle(tmp_path, zoo_hash, monkeypatch):
    first = fit_toy_classifier(tmp_path / "one", labels=LABELS, latent_dim=16, per_class=5, encoder_hash=zoo_hash)
    second = fit_toy_classifier(tmp_path / "two", kind="dt", labels=LABELS, latent_dim=16, per_class=5,
                                encoder_hash=zoo_hash)
    write_bundle(tmp_path / "b1", encoder="zoo:everyday-64", classifier=first.path, preprocessing=PRE)
    write_bundle(tmp_path / "b2", encoder="zoo:everyday-64", classifier=second.path, preprocessing=PRE)
    monkeypatch.setenv("TINYACT_ADMIN_TOKEN", "adm")
    with serve_in_background(tmp_path / "b1", tmp_path / "c.db") as cloud:
        headers = cloud.admin_headers()
        assert httpx.get(f"{cloud.url}/v1/model", headers=headers).json()["version"] == first.version
        result = runner.invoke(app, ["cloud", "model", "activate", str(tmp_path / "b2"), "--url", cloud.url])
        assert result.exit_code == 0 and second.version in result.output, result.output
        assert httpx.get(f"{cloud.url}/v1/model", headers=headers).json()["version"] == second.version
    config = tmp_path / "edge.yaml"
    result = runner.invoke(app, ["edge", "init", "--bundle", str(tmp_path / "b1"), "--out", str(config)])
    assert result.exit_code == 0, result.output
    cfg = EdgeConfig.from_yaml(config)
    assert str(cfg.encoder.checkpoint) == "zoo:everyday-64" and cfg.encoder.input_size == 64
    assert cfg.schedule.frames_per_clip == 16 and cfg.encoder.mirror is False
    # A classifier fitted on mirrored readings (table1's `+mirror` rows) makes the edge send mirrored latents.
    write_bundle(tmp_path / "b3", encoder="zoo:everyday-64", classifier=first.path, preprocessing={**PRE, "mirror": True})
    result = runner.invoke(app, ["edge", "init", "--bundle", str(tmp_path / "b3"), "--out", str(config), "--force"])
    assert result.exit_code == 0, result.output
    assert EdgeConfig.from_yaml(config).encoder.mirror is True


def test_classify_fit_writes_a_bundle_when_it_knows_the_encoder(tmp_path, zoo_hash):
    import numpy as np

    from benchmarks.cloud_fixtures import toy_latents
    from tinyact.latents import LatentsFile

    y = np.repeat(np.arange(3), 8)
    splits = ["train"] * 4 + ["val"] * 2 + ["test"] * 2
    for encoder_hash, name in ((zoo_hash, "zoo"), ("unknown-encoder", "other")):
        LatentsFile(latents=toy_latents(y, 16, 3, 0).astype(np.float32), labels=[LABELS[i] for i in y],
                    label_names=sorted(LABELS), clip_ids=[f"c{i}" for i in range(len(y))], splits=splits * 3,
                    encoder_hash=encoder_hash, meta={"sampling": {"num_frames": 16, "size": 64, "strategy": "uniform"}},
                    ).save(tmp_path / f"{name}.npz")
        result = runner.invoke(app, ["classify", "fit", "--latents", str(tmp_path / f"{name}.npz"), "--model", "dt",
                                     "--folds", "2", "--out", str(tmp_path / name)])
        assert result.exit_code == 0, result.output
    made = load_bundle(tmp_path / "zoo-bundle")
    assert made.encoder_spec == "zoo:everyday-64" and made.preprocessing["frames"] == 16
    assert not (tmp_path / "other-bundle").exists()
