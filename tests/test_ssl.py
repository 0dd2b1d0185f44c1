"""Self-supervised objectives, their views and augmentations, resume, adaptation and the CLI dispatch."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from tests.conftest import frame_index_of
from tinyact.cli import app
from tinyact.data.cache import ClipCache
from tinyact.data.layouts import read_kinetics
from tinyact.data.manifest import Manifest, ManifestEntry
from tinyact.data.transforms import normalize
from tinyact.data.video import ClipSampling, read_clip
from tinyact.errors import ConfigError
from tinyact.models.autoencoder3d import PRESETS, VideoAutoEncoder3D
from tinyact.models.checkpoint import load_model, save_model, state_dict_hash
from tinyact.training import ssl
from tinyact.training.adapt import adapt_encoder
from tinyact.training.runtime import read_metrics
from tinyact.training.ssl import SSLTrainConfig, train_ssl
from tinyact.training.ssl_objectives import SSLHeads, byol_loss, ema_update, info_nce_loss, objective_loss
from tinyact.training.ssl_probe import probe_clip
from tinyact.training.ssl_views import augment_clips, build_window_cache, cut_view, read_windows, sample_views

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = {"channels": [4, 8, 8, 16], "latent_dim": 32}


@pytest.fixture(scope="module")
def data(tiny_synth, tmp_path_factory):
    """(manifest CSV, a window cache of 12 frames at 16 px) shared by the runs of this module."""
    root = tmp_path_factory.mktemp("ssl")
    entries, _ = read_kinetics(tiny_synth)
    manifest_csv = Manifest(entries, tiny_synth).write(root / "manifest.csv")
    cfg = SSLTrainConfig(manifest=manifest_csv, out=root / "unused", size=16, frames=4)
    build_window_cache(Manifest.read(manifest_csv), root / "windows", cfg.sampling(), workers=1)
    return manifest_csv, root / "windows"


def _cfg(data, out, **kw) -> SSLTrainConfig:
    manifest_csv, cache = data
    base = dict(manifest=manifest_csv, out=out, cache_dir=cache, size=16, frames=4, batch_size=4, epochs=2,
                device="cpu", workers=1, model_overrides=TINY, proj_hidden=32, proj_dim=16)
    return SSLTrainConfig(**{**base, **kw})


def _tiny_model(frames: int = 4, size: int = 16) -> VideoAutoEncoder3D:
    from dataclasses import replace

    return VideoAutoEncoder3D(replace(PRESETS["fast-motion"], num_frames=frames, input_size=(size, size),
                                      channels=(4, 8, 8, 16), latent_dim=32))


# ---------------------------------------------------------------------------------------------- windows, views


def test_window_cache_reads_whole_videos_and_probe_clip_matches_extract(data, tiny_synth):
    manifest_csv, cache_dir = data
    manifest = Manifest.read(manifest_csv)
    cache = ClipCache(cache_dir)
    assert len(cache) == len(manifest)  # short videos repeat frames instead of being skipped
    entry = manifest.entries[0]
    windows = cache.get_array(entry.clip_id)
    assert windows.shape == (1, 12, 3, 16, 16) and windows.dtype == np.uint8
    # With W = 3·T the probe clip is the clip the extract step reads (uniform sampling, same instants).
    expected = read_clip(manifest.resolve(entry), ClipSampling(num_frames=4, size=16))
    assert torch.equal(probe_clip(windows, 4), expected)


def test_window_cache_resumes_with_the_videos_not_done_yet(data, tmp_path, caplog):
    manifest = Manifest.read(data[0])
    sampling = SSLTrainConfig(manifest=data[0], out=tmp_path, size=16, frames=4).sampling()
    first = Manifest(manifest.entries[:5], manifest.root)
    build_window_cache(first, tmp_path / "w", sampling, workers=1)
    (tmp_path / "w" / "shard-stale000000.npy.tmp").write_bytes(b"half a shard")  # left by a killed build
    with caplog.at_level("INFO", logger="tinyact.data.cache"):
        build_window_cache(manifest, tmp_path / "w", sampling, workers=1)
    assert f"5 clips already done, {len(manifest) - 5} to go" in caplog.text
    assert len(ClipCache(tmp_path / "w")) == len(manifest)
    assert not list((tmp_path / "w").glob("*.tmp"))
    with pytest.raises(Exception, match="different cache"):
        build_window_cache(manifest, tmp_path / "w", ClipSampling(num_frames=6, size=16), workers=1)


def test_two_views_of_one_video_differ_and_cover_different_times(make_video):
    # Grey level = frame index, so each view's frames say where in the video it was cut.
    path = make_video("ramp.mp4", n_frames=36, height=32, width=32)
    windows = torch.from_numpy(read_windows(path, ClipSampling(num_frames=36, size=16)))[None]  # [1, 1, 36, 3, S, S]
    generator = torch.Generator().manual_seed(0)
    views, labels = sample_views(windows, 8, [1, 2, 3], 2, generator)
    assert views.shape == (2, 1, 8, 3, 16, 16) and views.dtype == torch.uint8 and not labels.any()
    assert not torch.equal(views[0, 0], views[1, 0])
    for v in range(2):
        idx = [frame_index_of(views[v, 0, t].float().mean()) for t in range(8)]
        steps = set(np.diff(idx).tolist())
        assert len(steps) == 1 and steps.pop() in (1, 2, 3), idx  # one stride, forward in time
    starts = {frame_index_of(views[v, 0, 0].float().mean()) for v in range(2)}
    assert len(starts) == 2


def test_speed_views_are_cut_at_their_class_stride_or_reversed(make_video):
    path = make_video("ramp.mp4", n_frames=36, height=32, width=32)
    windows = torch.from_numpy(read_windows(path, ClipSampling(num_frames=36, size=16)))[None]
    views, labels = sample_views(windows.expand(16, -1, -1, -1, -1, -1), 8, [1, 3], 1,
                                 torch.Generator().manual_seed(1), speed_classes=True)
    assert set(labels.flatten().tolist()) == {0, 1, 2}
    for i in range(16):
        idx = np.diff([frame_index_of(views[0, i, t].float().mean()) for t in range(8)])
        label = int(labels[0, i])
        if label < 2:
            assert set(idx.tolist()) == {[1, 3][label]}
        else:
            assert (idx < 0).all()  # played backwards
    with pytest.raises(ValueError, match="runs past"):
        cut_view(windows[0, 0], 8, 6, 0)


def test_augmentations_keep_shapes_dtype_and_range():
    generator = torch.Generator().manual_seed(0)
    clips = torch.randint(0, 256, (6, 4, 3, 20, 16), dtype=torch.uint8, generator=generator)
    out = augment_clips(clips, generator, jitter=0.9, jitter_p=1.0)
    assert out.shape == clips.shape and out.dtype == torch.uint8
    assert not torch.equal(out, clips)
    # Nothing drawn: the clip comes back unchanged.
    same = augment_clips(clips, generator, crop_scale=(1.0, 1.0), aspect=(1.0, 1.0), flip_p=0.0, jitter=0.0,
                         grey_p=0.0)
    assert torch.equal(same, clips)
    grey = augment_clips(clips, generator, grey_p=1.0, jitter_p=0.0)
    assert torch.equal(grey[:, :, 0], grey[:, :, 1]) and torch.equal(grey[:, :, 1], grey[:, :, 2])
    # One draw per clip: a static clip stays static (the augmentation adds no motion).
    static = clips[:, :1].expand(-1, 4, -1, -1, -1).contiguous()
    moved = augment_clips(static, generator, jitter_p=1.0)
    assert torch.equal(moved, moved[:, :1].expand_as(moved))
    with pytest.raises(ValueError, match="uint8"):
        augment_clips(clips.float(), generator)


# ---------------------------------------------------------------------------------------------- objectives


def test_losses_are_zero_or_low_for_agreeing_views():
    z = torch.randn(2, 8, 16)
    same = z[:1].expand(2, -1, -1)  # both views of each video map to one point
    assert byol_loss(same, same.clone()).item() == pytest.approx(0.0, abs=1e-6)
    assert byol_loss(same, -same).item() == pytest.approx(4.0, abs=1e-5)
    assert byol_loss(same, z) > 0.1
    assert info_nce_loss(same, temperature=0.1) < info_nce_loss(z, temperature=0.1)


@pytest.mark.parametrize("objective", ["rho-byol", "rho-simclr", "speed"])
def test_each_objective_lowers_its_loss_on_a_tiny_set(data, objective):
    manifest_csv, cache_dir = data
    cache = ClipCache(cache_dir)
    torch.manual_seed(0)
    model = _tiny_model()
    cfg = _cfg(data, "unused")
    heads = SSLHeads(objective, 32, cfg)
    windows = torch.from_numpy(np.stack([cache.get_array(cid) for cid in cache.clip_ids[:8]]))
    views, labels = sample_views(windows, 4, [1, 2, 3], 2, torch.Generator().manual_seed(0),
                                 speed_classes=objective == "speed")
    x = normalize(views.flatten(0, 1), model.config.normalization)  # the same batch every step
    target = target_projector = None
    if objective == "rho-byol":
        target, target_projector = copy.deepcopy(model), copy.deepcopy(heads.projector)
    params = [p for m in model.encoder_modules() for p in m.parameters()] + list(heads.parameters())
    optimizer = torch.optim.Adam(params, lr=3e-3)
    losses = []
    for _ in range(12):
        loss, _ = objective_loss(objective, model, heads, x, labels.flatten(), 2, target=target,
                                 target_projector=target_projector)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if target is not None:
            ema_update(target, model, 0.9)
            ema_update(target_projector, heads.projector, 0.9)
        losses.append(loss.item())
    assert np.mean(losses[-3:]) < 0.8 * np.mean(losses[:3]), losses


# ---------------------------------------------------------------------------------------------- training runs


def test_a_run_writes_its_outputs_and_probes_every_epoch(data, tmp_path):
    result = train_ssl(_cfg(data, tmp_path / "run", objective="ssl"))
    rows = read_metrics(result.metrics_csv)
    assert [int(float(r["epoch"])) for r in rows] == [0, 1, 2]  # row 0: the starting (random) weights
    assert all(0 <= float(r["probe_linear"]) <= 1 and 0 <= float(r["probe_knn"]) <= 1 for r in rows)
    assert float(rows[1]["loss"]) > 0 and float(rows[1]["clips_per_s"]) > 0 and float(rows[1]["z_std"]) > 0
    for name in ("config.yaml", "curves.png", "last.pt", "model.pt", "best.pt"):
        assert (result.run_dir / name).is_file(), name
    model, info = load_model(result.model)
    assert info["hash"] == result.encoder_hash == state_dict_hash(model.state_dict())
    assert info["extra"]["objective"] == ssl.RECOMMENDED
    assert model.encode(torch.zeros(1, 4, 3, 16, 16)).shape == (1, 32)
    assert result.best["probe_linear"] == max(float(r["probe_linear"]) for r in rows[1:])


class _Killed(Exception):
    pass


@pytest.mark.parametrize("objective", ["rho-byol", "speed"])
def test_killed_and_resumed_run_ends_with_the_same_weights(data, tmp_path, objective):
    straight = train_ssl(_cfg(data, tmp_path / "straight", objective=objective))

    def kill_after_first(epoch, row):
        if epoch == 1:
            raise _Killed

    with pytest.raises(_Killed):
        train_ssl(_cfg(data, tmp_path / "killed", objective=objective), on_epoch_end=kill_after_first)
    with pytest.raises(ConfigError, match="--resume"):
        train_ssl(_cfg(data, tmp_path / "killed", objective=objective))
    with pytest.raises(ConfigError, match="rho"):
        train_ssl(_cfg(data, tmp_path / "killed", objective=objective, rho=3), resume=True)
    resumed = train_ssl(_cfg(data, tmp_path / "killed", objective=objective), resume=True)
    assert resumed.encoder_hash == straight.encoder_hash
    assert [r["epoch"] for r in read_metrics(resumed.metrics_csv)] == ["0.0", "1.0", "2.0"]


def test_views_must_fit_the_window(data, tmp_path):
    with pytest.raises(ValueError, match="window"):
        _cfg(data, tmp_path, strides=[4])  # (4 − 1)·4 + 1 = 13 > 12 window frames


# ---------------------------------------------------------------------------------------------- adaptation


def _start_file(tmp_path):
    torch.manual_seed(3)
    path = tmp_path / "start.pt"
    save_model(path, _tiny_model())
    return path


def _fake_probe(values):
    """A probe returning ``values`` in turn (before, then after each epoch)."""
    calls = iter(values)

    def probe(model, probe_set, device):
        value = next(calls)
        return {"probe_linear": value, "probe_knn": value}

    return probe


def test_adaptation_keeps_the_original_when_the_probe_gets_worse(data, tmp_path, monkeypatch):
    manifest_csv, cache = data
    start = _start_file(tmp_path)
    start_hash = load_model(start)[1]["hash"]
    monkeypatch.setattr(ssl, "probe_model", _fake_probe([0.6, 0.4, 0.5]))
    result = adapt_encoder(start, manifest_csv, tmp_path / "adapt", epochs=2, batch_size=4, device="cpu",
                           cache_dir=cache, overrides={"proj_hidden": 32, "proj_dim": 16})
    assert result.kept == "original" and (result.before, result.after, result.after_epoch) == (0.6, 0.5, 2)
    assert load_model(result.model)[1]["hash"] == result.encoder_hash == start_hash
    report = json.loads(result.report.read_text())
    assert report["before"] == 0.6 and report["after"] == 0.5 and report["kept"] == "original"


def test_adaptation_keeps_the_adapted_encoder_when_the_probe_improves(data, tmp_path, monkeypatch):
    manifest_csv, cache = data
    start = _start_file(tmp_path)
    monkeypatch.setattr(ssl, "probe_model", _fake_probe([0.4, 0.7, 0.5]))
    result = adapt_encoder(start, manifest_csv, tmp_path / "adapt", epochs=2, batch_size=4, device="cpu",
                           cache_dir=cache, overrides={"proj_hidden": 32, "proj_dim": 16})
    assert result.kept == "adapted" and result.after == 0.7 and result.after_epoch == 1
    adapted = load_model(result.model)[1]
    assert adapted["extra"]["epoch"] == 1 and adapted["hash"] != load_model(start)[1]["hash"]


def test_a_destructive_adaptation_is_not_kept(data, tmp_path):
    """A start the probe rates highly, and a learning rate that wrecks the encoder: the original stays."""
    manifest_csv, _ = data
    manifest = Manifest.read(manifest_csv)
    train = [ManifestEntry(str(manifest.resolve(e)), e.label, "train", e.clip_id) for e in manifest.entries]
    # val = copies of the train videos: an encoder that tells clips apart probes well above chance on them.
    twins = [ManifestEntry(e.path, e.label, "val", e.clip_id + "-twin") for e in train]
    path = Manifest(train + twins, manifest.root).write(tmp_path / "twins.csv")
    start = _start_file(tmp_path)
    result = adapt_encoder(start, path, tmp_path / "adapt", objective="speed", epochs=1, lr=1e4, batch_size=4,
                           device="cpu", cache_dir=tmp_path / "windows", overrides={"warmup_epochs": 0})
    assert result.before > 0.5 and result.after < result.before
    assert result.kept == "original"
    assert load_model(result.model)[1]["hash"] == result.encoder_hash == load_model(start)[1]["hash"]
    report = json.loads(result.report.read_text())
    assert (report["before"], report["after"], report["kept"]) == (result.before, result.after, "original")


def test_adaptation_without_val_labels_is_refused(data, tmp_path):
    manifest_csv, cache = data
    manifest = Manifest.read(manifest_csv)
    unlabelled = Manifest([ManifestEntry(str(manifest.resolve(e)), e.label, "train", e.clip_id)
                           for e in manifest.entries], manifest.root)
    path = unlabelled.write(tmp_path / "train_only.csv")
    with pytest.raises(ConfigError, match="label"):
        adapt_encoder(_start_file(tmp_path), path, tmp_path / "adapt", epochs=1, batch_size=4, device="cpu",
                      cache_dir=cache)


# ---------------------------------------------------------------------------------------------- CLI


def test_objective_reconstruction_still_runs_the_autoencoder(data, tmp_path, monkeypatch):
    from tinyact.training import ae

    seen = {}

    def fake_train_autoencoder(cfg, resume=False):
        seen["cfg"], seen["resume"] = cfg, resume
        return ae.AETrainResult(checkpoint=tmp_path / "m.pt", run_dir=tmp_path, metrics_csv=tmp_path / "m.csv",
                                encoder_hash="abc")

    monkeypatch.setattr(ae, "train_autoencoder", fake_train_autoencoder)
    monkeypatch.setattr(ssl, "train_ssl", lambda *a, **k: pytest.fail("reconstruction must not train SSL"))
    manifest_csv, _ = data
    runner = CliRunner()
    for command in (["train", "ssl", "--objective", "reconstruction"], ["train", "ae"],
                    ["train", "ae", "--objective", "reconstruction"]):
        seen.clear()
        result = runner.invoke(app, [*command, "--manifest", str(manifest_csv), "--out", str(tmp_path / "r"),
                                     "--size", "16", "--frames", "4", "--epochs", "1"])
        assert result.exit_code == 0, result.output
        assert isinstance(seen["cfg"], ae.AETrainConfig) and seen["cfg"].size == 16 and seen["cfg"].epochs == 1


def test_a_self_supervised_objective_in_train_ae_runs_train_ssl(data, tmp_path, monkeypatch):
    seen = {}

    def fake_train_ssl(cfg, resume=False):
        seen["cfg"] = cfg
        return ssl.SSLTrainResult(model=tmp_path / "m.pt", best_model=None, run_dir=tmp_path,
                                  metrics_csv=tmp_path / "m.csv", encoder_hash="abc", metrics={"loss": 1.0})

    monkeypatch.setattr(ssl, "train_ssl", fake_train_ssl)
    manifest_csv, _ = data
    result = CliRunner().invoke(app, ["train", "ae", "--objective", "rho-simclr", "--manifest", str(manifest_csv),
                                      "--out", str(tmp_path / "r"), "--size", "16", "--frames", "4"])
    assert result.exit_code == 0, result.output
    assert seen["cfg"].objective == "rho-simclr" and seen["cfg"].preset == "fast-motion"
    result = CliRunner().invoke(app, ["train", "ssl", "--objective", "nonsense", "--manifest", str(manifest_csv),
                                      "--out", str(tmp_path / "r2")])
    assert result.exit_code != 0


def test_train_adapt_command_reports_the_decision(data, tmp_path, monkeypatch):
    manifest_csv, cache = data
    start = _start_file(tmp_path)
    monkeypatch.setattr(ssl, "probe_model", _fake_probe([0.5, 0.25]))
    result = CliRunner().invoke(app, ["train", "adapt", "--encoder", str(start), "--manifest", str(manifest_csv),
                                      "--out", str(tmp_path / "adapt"), "--epochs", "1", "--batch-size", "4",
                                      "--device", "cpu", "--cache-dir", str(cache)])
    assert result.exit_code == 0, result.output
    assert "50.0 % before, 25.0 % after" in result.output and "original" in result.output
    assert json.loads((tmp_path / "adapt" / "adapt.json").read_text())["kept"] == "original"
