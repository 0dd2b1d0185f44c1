"""Supervised fine-tuning of a pretrained encoder on a user's labelled clips (`tinyact train finetune`)."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from tinyact.cli import app
from tinyact.data.cache import ClipCache, build_cache
from tinyact.data.datasets import CachedWindows
from tinyact.data.layouts import read_kinetics
from tinyact.data.manifest import Manifest
from tinyact.data.video import ClipSampling
from tinyact.errors import ConfigError
from tinyact.models.autoencoder3d import VideoAutoEncoder3D
from tinyact.models.checkpoint import load_model, save_model, state_dict_hash
from tinyact.training import finetune as finetune_module
from tinyact.training.finetune import FinetuneConfig, finetune

WINDOWS = {"strategy": "multi", "sample_fps": 8.0, "num_clips": 2}


@pytest.fixture
def labelled(tiny_synth, tmp_path):
    """The tiny synthetic set's manifest (3 classes, train / val / test actors) and a small encoder file."""
    entries, _ = read_kinetics(tiny_synth)
    Manifest(entries, tiny_synth).write(tmp_path / "manifest.csv")
    torch.manual_seed(0)
    start = VideoAutoEncoder3D(num_frames=4, input_size=16, channels=(4, 8, 8, 8), latent_dim=16).eval()
    save_model(tmp_path / "start.pt", start)
    return tmp_path / "manifest.csv", tmp_path / "start.pt"


def settings(manifest, start, out, **changes):
    return FinetuneConfig(**{"manifest": manifest, "out": out, "init": str(start), "sampling": WINDOWS, "epochs": 2,
                             "batch_size": 4, "device": "cpu", "workers": 1, **changes})


def test_cached_windows_are_one_example_each(labelled, tmp_path):
    manifest = Manifest.read(labelled[0])
    build_cache(manifest, tmp_path / "cache", ClipSampling(num_frames=4, size=16, **WINDOWS), workers=1)
    cache = ClipCache(tmp_path / "cache")
    train = CachedWindows(manifest.split("train"), cache)
    assert len(train) == 2 * len(manifest.split("train"))
    clip, label = train[1]
    assert clip.shape == (4, 3, 16, 16) and clip.dtype == torch.uint8
    assert torch.equal(clip, cache[train.items[1][0]][1]) and 0 <= label < 3  # the clip's second window


def test_finetune_keeps_the_better_encoder_and_resumes(labelled, tmp_path, one_thread):
    manifest, start = labelled
    result = finetune(settings(manifest, start, tmp_path / "run"))
    report = json.loads(result.report.read_text())
    assert report["kept"] == result.kept and report["train_windows"] > 0 and report["val_windows"] > 0
    assert 0 <= result.before <= 1 and 0 <= result.after <= 1
    model, info = load_model(result.model)
    assert info["hash"] == result.encoder_hash == report["encoder_hash"]
    assert info["extra"]["label_names"] == Manifest.read(manifest).label_names
    if result.kept == "original":
        assert result.encoder_hash == state_dict_hash(load_model(start)[0].state_dict())
    assert (tmp_path / "run" / "config.yaml").is_file() and (tmp_path / "run" / "metrics.csv").is_file()
    # A finished run is not overwritten by accident; --resume continues it to more epochs.
    with pytest.raises(ConfigError, match="resume"):
        finetune(settings(manifest, start, tmp_path / "run"))
    finetune(settings(manifest, start, tmp_path / "run", epochs=3), resume=True)
    assert len((tmp_path / "run" / "metrics.csv").read_text().strip().splitlines()) == 1 + 3


def test_a_finetuned_encoder_that_probes_worse_is_not_kept(labelled, tmp_path, monkeypatch, one_thread):
    manifest, start = labelled
    scores = iter([0.9, 0.5])  # the start probes better than the fine-tuned encoder
    monkeypatch.setattr(finetune_module, "window_probe", lambda *args: next(scores))
    result = finetune(settings(manifest, start, tmp_path / "run", epochs=1))
    assert result.kept == "original" and (result.before, result.after) == (0.9, 0.5)
    assert result.encoder_hash == state_dict_hash(load_model(start)[0].state_dict())


def test_finetune_needs_val_clips_and_two_classes(labelled, tmp_path):
    manifest, start = labelled
    rows = Manifest.read(manifest)
    Manifest([e for e in rows.entries if e.split != "val"], rows.root, rows.label_names).write(tmp_path / "noval.csv")
    result = CliRunner().invoke(app, ["train", "finetune", "--manifest", str(tmp_path / "noval.csv"),
                                      "--out", str(tmp_path / "x"), "--init", str(start)])
    assert result.exit_code != 0 and "val" in result.output and "Traceback" not in result.output


def test_frozen_stages_keep_their_weights_and_statistics(labelled, tmp_path, monkeypatch, one_thread):
    manifest, start = labelled
    scores = iter([0.1, 0.9])  # the fine-tuned encoder is kept, so its weights are the ones checked
    monkeypatch.setattr(finetune_module, "window_probe", lambda *args: next(scores))
    result = finetune(settings(manifest, start, tmp_path / "run", epochs=1, frozen_stages=2))
    before, after = load_model(start)[0].state_dict(), load_model(result.model)[0].state_dict()
    assert result.kept == "finetuned"
    # encoder.0-2: stem conv, BN, ReLU; encoder.3-5: the second stage (this encoder has no bottleneck blocks)
    frozen = [k for k in before if k.startswith(("encoder.0.", "encoder.1.", "encoder.3.", "encoder.4."))]
    trained = [k for k in before if k.startswith(("encoder.6.", "encoder.7.", "to_latent."))]
    assert any("running_mean" in k for k in frozen) and trained
    assert all(torch.equal(before[k], after[k]) for k in frozen)
    assert not all(torch.equal(before[k], after[k]) for k in trained)


def test_freeze_stages_survives_train_mode_and_checks_its_count():
    model = VideoAutoEncoder3D(num_frames=4, input_size=16, channels=(4, 8, 8, 8), latent_dim=16, stage_blocks=[1, 0, 0, 0])
    model.freeze_stages(1)
    model.train()
    stem = list(model.encoder.children())[:4]  # conv, BN, ReLU, bottleneck block
    assert not any(m.training for m in stem) and all(m.training for m in list(model.encoder.children())[4:])
    assert not any(p.requires_grad for m in stem for p in m.parameters())
    for count in (-1, 4):
        with pytest.raises(ValueError, match="frozen stages must be 0 to 3"):
            model.freeze_stages(count)


def test_finetune_refuses_to_freeze_every_stage(labelled, tmp_path):
    manifest, start = labelled
    result = CliRunner().invoke(app, ["train", "finetune", "--manifest", str(manifest), "--out", str(tmp_path / "x"),
                                      "--init", str(start), "--frozen-stages", "4", "--device", "cpu"])
    assert result.exit_code != 0 and "frozen stages must be 0 to 3" in result.output
    assert "Traceback" not in result.output
