"""Windowed reading: corpus clips drawn as camera windows at a real frame rate, and encoders that read a video as
the mean latent of several such windows (the zoo entry's ``sampling``), through extract, the sklearn
``VideoEncoder`` and ``zoo build --from-stage``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tinyact import zoo
from tinyact.classifiers.video_encoder import VideoEncoder
from tinyact.data.encode import encode_video
from tinyact.data.manifest import Manifest, ManifestEntry
from tinyact.data.synth.corpus import CorpusConfig, _sample_times, render_corpus_clip
from tinyact.data.synth.motions import MOTIONS
from tinyact.data.transforms import normalize
from tinyact.data.video import ClipSampling, sample_clips
from tinyact.edge.encoder import EdgeEncoder
from tinyact.errors import ConfigError
from tinyact.models.autoencoder3d import VideoAutoEncoder3D
from tinyact.models.checkpoint import save_model
from tinyact.models.runtime import TorchRuntime
from tinyact.training.extract import encode_windows, extract_latents
from tinyact.training.zoo_build import build_entry, package_entry

WINDOWED = {"strategy": "multi", "sample_fps": 8.0, "num_clips": 3}


def small_encoder() -> VideoAutoEncoder3D:
    torch.manual_seed(0)
    return VideoAutoEncoder3D(num_frames=4, input_size=16, channels=(4, 8, 8, 8), latent_dim=16).eval()


def test_corpus_windows_have_a_real_rate_and_old_corpora_keep_their_instants(tmp_path):
    windowed = CorpusConfig(out=tmp_path, clips=50, frames=16, sample_fps=(7.0, 9.5))
    spread = CorpusConfig(out=tmp_path, clips=50, frames=16)
    for index in range(20):
        motion = MOTIONS[index % len(MOTIONS)]
        times, duration, fps = _sample_times(np.random.default_rng([0, 2, index]), windowed, motion, index)
        steps = np.diff(times)
        # Snapped to the camera's frames (1/fps apart), the instants keep the drawn rate on average.
        assert 1 / 9.5 - 1 / fps <= steps.mean() <= 1 / 7.0 + 1 / fps
        assert times[0] >= 0 and times[-1] < duration
        old, old_duration, _ = _sample_times(np.random.default_rng([0, 2, index]), spread, motion, index)
        centres = (np.arange(16) + 0.5) * old_duration / 16
        assert np.allclose(old, np.floor(centres * fps) / fps)  # segment centres, as before the option existed
    a, _ = render_corpus_clip(windowed, 3)
    b, _ = render_corpus_clip(windowed, 3)
    assert np.array_equal(a, b)


def test_corpus_rejects_an_inverted_rate_range(tmp_path):
    with pytest.raises(ValueError, match="sample_fps"):
        CorpusConfig(out=tmp_path, sample_fps=(10.0, 5.0))


def test_encode_windows_is_the_mean_of_the_window_latents():
    model = small_encoder()
    x = torch.rand(2, 3, 4, 3, 16, 16)
    with torch.no_grad():
        mean = encode_windows(model, x)
        one_by_one = torch.stack([torch.stack([model.encode(x[b, k : k + 1])[0] for k in range(3)]).mean(0)
                                  for b in range(2)])
    assert mean.shape == (2, 16) and torch.allclose(mean, one_by_one, atol=1e-5)


@pytest.fixture
def windowed_entry(tmp_path, monkeypatch) -> zoo.ZooEntry:
    """A tiny zoo entry whose recipe reads videos as the mean of 3 windows at 8 frames per second."""
    model_file = tmp_path / "model.pt"
    save_model(model_file, small_encoder(), extra={"label_names": ["a", "b"]})
    package_entry("windowed", model_file, tmp_path / "entries" / "windowed", {"sampling": WINDOWED, "stages": []},
                  {}, {"device": "cpu"})
    monkeypatch.setattr(zoo, "ENTRIES_DIR", tmp_path / "entries")
    return zoo.get_entry("windowed")


def test_a_partial_or_invalid_reading_is_one_clear_error(windowed_entry):
    with pytest.raises(ConfigError, match="replaces the encoder's own reading"):
        zoo.encoder_sampling(windowed_entry, 4, 16, {"num_clips": 8})  # would need strategy: multi as well


def test_an_entry_carries_its_sampling_and_an_override_wins(windowed_entry):
    sampling = windowed_entry.clip_sampling()
    assert (sampling.strategy, sampling.sample_fps, sampling.num_clips) == ("multi", 8.0, 3)
    assert (sampling.num_frames, sampling.size) == (4, 16)
    assert zoo.encoder_sampling(windowed_entry, 4, 16, {"strategy": "uniform"}).strategy == "uniform"
    assert zoo.encoder_sampling(None, 4, 16).strategy == "uniform"


def test_extract_and_video_encoder_average_the_entry_windows(windowed_entry, make_video, tmp_path):
    videos = [make_video(f"v{i}.mp4", n_frames=50 + 10 * i) for i in range(2)]
    sampling = windowed_entry.clip_sampling()
    model, _ = zoo.load_encoder("windowed")
    with torch.no_grad():
        expected = np.stack([
            np.mean([model.encode(normalize(c.frames[None], model.config.normalization))[0].numpy()
                     for c in sample_clips(v, sampling)], axis=0)
            for v in videos])
    entries = [ManifestEntry(str(v), "a", "train", f"c{i}") for i, v in enumerate(videos)]
    latents = extract_latents(model, Manifest(entries, Path("/")), sampling, tmp_path / "z.npz", batch_size=2)
    assert np.allclose(latents.latents, expected, atol=1e-5)
    assert latents.meta["sampling"]["strategy"] == "multi"
    encoder = VideoEncoder(checkpoint="zoo:windowed").fit(videos)
    assert encoder.sampling_ == sampling
    assert np.allclose(encoder.transform(videos), expected, atol=1e-5)


def test_zoo_build_from_a_later_stage_needs_the_model_before_it(tmp_path):
    with pytest.raises(ConfigError, match="--init"):
        build_entry("everyday-64", tmp_path, from_stage=2)
    with pytest.raises(ConfigError, match="stages 1-"):
        build_entry("everyday-64", tmp_path, from_stage=9, init=tmp_path / "m.pt")


@pytest.mark.parametrize("kept_epoch", [-1, 2])
def test_zoo_build_passes_on_the_start_when_a_stage_keeps_it(tmp_path, monkeypatch, kept_epoch):
    # A growing stage that keeps its start has saved a grown copy (identity blocks, same latents): the entry must
    # be the smaller model it started from, not that copy; a stage that trained better passes on its own model.
    import tinyact.data.synth.corpus_files as corpus_files
    import tinyact.training.pretrain as pretrain_module
    import tinyact.training.zoo_build as zoo_build
    from tinyact.training.pretrain import PretrainResult

    stages = len(zoo_build.recipe_stages(zoo_build.read_recipe("everyday-64")))
    packaged = {}
    monkeypatch.setattr(corpus_files, "build_corpus", lambda cfg: None)
    monkeypatch.setattr(pretrain_module, "pretrain", lambda cfg, resume: PretrainResult(
        Path(cfg.out) / "model.pt", "h", kept_epoch, {"score": 1.0, "epoch": float(kept_epoch)}, 0.0))
    monkeypatch.setattr(zoo_build, "package_entry", lambda name, model, target, recipe, metrics, trained_on, *args:
                        packaged.update(model=model, metrics=metrics, trained_on=trained_on))
    earlier = {"stage_1": {"score": 0.5, "epoch": 3.0}}
    build_entry("everyday-64", tmp_path, from_stage=stages, init=tmp_path / "start.pt",
                init_record={"init_encoder_hash": "abc"}, earlier_stages=earlier)
    expected = tmp_path / "start.pt" if kept_epoch < 0 else tmp_path / f"stage-{stages}" / "model.pt"
    assert packaged["model"] == expected
    # The entry it continues keeps its stages' metrics; where the stage started is recorded, not repeated.
    assert list(packaged["metrics"]["stages"]) == ["stage_1", f"stage_{stages}"]
    # The entry's selection is the stage whose epoch ships: the earlier one when this stage kept its start.
    assert packaged["metrics"]["selection"] == (earlier["stage_1"] if kept_epoch < 0 else {"score": 1.0, "epoch": 2.0})
    assert packaged["trained_on"]["from_stage"]["init_encoder_hash"] == "abc"
    assert "init_stages" not in packaged["trained_on"]["from_stage"]


def test_uniform_reading_is_unchanged_for_model_files(tmp_path):
    assert zoo.encoder_sampling(None, 16, 64) == ClipSampling(num_frames=16, size=64, strategy="uniform")


def test_the_corpus_index_records_what_each_clip_shows(tmp_path):
    import csv

    from tinyact.data.synth.corpus_files import build_corpus, write_index

    cfg = CorpusConfig(out=tmp_path / "c", clips=30, size=24, frames=6, actors=30, shard_size=15, workers=1,
                       min_canvas=48, max_canvas=64, sample_fps=(7.0, 9.5))
    with open(build_corpus(cfg), newline="") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        _, info = render_corpus_clip(cfg, int(row["index"]))
        assert (row["style"], row["view"], row["camera"]) == (info.style, info.view, info.camera)
        assert float(row["person_area"]) == info.person_area and 0 <= info.person_area <= 100
    # A shard recorded before person_area existed still indexes: its clips' person_area is left empty.
    record = tmp_path / "c" / "shard-00000.csv"
    record.write_text("".join(",".join(line.split(",")[:4]) + "\n" for line in record.read_text().splitlines()))
    with open(write_index(cfg), newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["person_area"] == "" for r in rows] == [i < 15 for i in range(30)]
    assert all(r["style"] for r in rows)


def test_person_area_is_what_the_mask_camera_shows_of_the_person():
    # Binary-mask clips show the person white on black, so the share of white pixels is person_area, unless a
    # bystander or a dilated mask adds to it or blur, JPEG or an eroded mask takes from it (an occluder hides both).
    cfg = CorpusConfig(out=Path("unused"), clips=400, size=32, frames=4, actors=30, style_weights={"mask": 1.0},
                       min_canvas=64, max_canvas=96)
    white, recorded = [], []
    for index in range(0, 400, 10):
        clip, info = render_corpus_clip(cfg, index)
        if info.style == "mask":  # not inverted
            white.append(float((clip[:, 0] > 127).mean()) * 100)
            recorded.append(info.person_area)
    same = np.abs(np.array(white) - np.array(recorded)) <= 0.1
    assert len(white) >= 20 and same.mean() >= 0.5 and max(recorded) > 5


def test_the_demo_fits_its_classifier_on_single_windows(make_video, tmp_path):
    from tinyact.data.cache import build_cache
    from tinyact.demo.prepare import window_latents

    videos = [make_video(f"w{i}.mp4", n_frames=60) for i in range(2)]
    manifest = Manifest([ManifestEntry(str(v), "a", s, f"c{i}") for i, (v, s) in enumerate(zip(videos, ["train", "test"], strict=True))],
                        Path("/"))
    sampling = ClipSampling(strategy="multi", sample_fps=8.0, num_clips=3, num_frames=4, size=16)
    build_cache(manifest, tmp_path / "cache", sampling, workers=1)
    model_file = tmp_path / "m.pt"
    model = small_encoder()
    save_model(model_file, model)
    latents = window_latents(model_file, manifest, tmp_path / "cache", "h")
    assert latents.clip_ids.tolist() == [f"c{i}#w{k}" for i in range(2) for k in range(3)]
    assert latents.splits.tolist() == ["train"] * 3 + ["test"] * 3
    windows = sample_clips(videos[1], sampling)
    with torch.no_grad():
        alone = model.encode(normalize(windows[2].frames[None], model.config.normalization))[0].numpy()
    assert np.allclose(latents.latents[5], alone, atol=1e-5)  # a row is one window's own latent, not a mean


def test_a_mirrored_reading_cannot_tell_a_video_from_its_mirror_image(windowed_entry, tmp_path):
    # A block crossing the frame left to right over a background darker on the left, and its mirror image.
    frames = np.zeros((60, 48, 64, 3), np.uint8)
    frames[..., 0] = np.linspace(0, 200, 64, dtype=np.uint8)
    for t in range(60):
        frames[t, 20:32, t : t + 12] = 255
    videos = [tmp_path / "right.mp4", tmp_path / "left.mp4"]
    encode_video(videos[0], frames, 25, crf=10)
    encode_video(videos[1], frames[:, :, ::-1], 25, crf=10)
    model, _ = zoo.load_encoder("windowed")
    entries = [ManifestEntry(str(v), "a", "train", f"c{i}") for i, v in enumerate(videos)]
    reading = windowed_entry.clip_sampling()
    plain, invariant = (extract_latents(model, Manifest(entries, Path("/")), reading.model_copy(update={"mirror": m}),
                                        tmp_path / f"z{m}.npz", batch_size=2).latents for m in (False, True))
    gap, mirrored_gap = np.abs(plain[0] - plain[1]).max(), np.abs(invariant[0] - invariant[1]).max()
    assert mirrored_gap < 0.1 * gap, (mirrored_gap, gap)  # what remains is codec noise
    # The edge sends the same mean latent for a camera clip as for its mirror image.
    edge = EdgeEncoder(TorchRuntime(model), "torch", 4, (16, 16), 16, "h", mirror=True)
    clip = np.random.default_rng(0).integers(0, 255, (1, 4, 3, 16, 16), dtype=np.uint8)
    assert np.allclose(edge.encode(clip), edge.encode(clip[..., ::-1].copy()), atol=1e-5)
