"""The synthetic action generator: CVDF layout, decodable files, disjoint actors, determinism, motion."""

from __future__ import annotations

import csv
import hashlib

import numpy as np
import pytest

from tinyact.data.encode import encode_video
from tinyact.data.layouts import read_kinetics
from tinyact.data.synth.actions import ACTION_NAMES, Style, pose_at
from tinyact.data.synth.figure import Actor, skeleton
from tinyact.data.synth.generator import SynthConfig, plan_dataset, render_clip
from tinyact.data.video import ClipSampling, probe_video, read_clip


def test_synth_writes_decodable_cvdf_layout(tiny_synth):
    for split in ("train", "val", "test"):
        assert (tiny_synth / "annotations" / f"{split}.csv").is_file()
    entries, report = read_kinetics(tiny_synth)
    assert report.missing == 0 and len(entries) == 15
    assert {e.label for e in entries} == set(ACTION_NAMES[:3])
    for entry in entries:
        assert entry.path.startswith(f"{entry.split}/") and entry.path.endswith(".mp4")
        info = probe_video(tiny_synth / entry.path)
        assert info.codec == "h264" and info.height == 48 and info.width == 64
        assert info.num_frames == int(entry.extra["frames"])
    clip = read_clip(tiny_synth / entries[0].path, ClipSampling(size=32))
    assert clip.shape == (16, 3, 32, 32) and clip.float().std() > 5  # a real picture, not a blank frame
    assert (tiny_synth / "preview.png").stat().st_size > 1000


def test_test_actors_never_appear_in_train(tiny_synth):
    actors = {}
    for split in ("train", "val", "test"):
        with open(tiny_synth / "annotations" / f"{split}.csv") as handle:
            actors[split] = {row["actor"] for row in csv.DictReader(handle)}
    assert actors["test"] and actors["train"]
    assert not actors["test"] & actors["train"]
    assert not actors["test"] & actors["val"] and not actors["val"] & actors["train"]


def test_generation_is_deterministic_for_a_seed(tmp_path):
    cfg = SynthConfig(out=tmp_path, classes=2, clips_per_class=3, size=32, seed=5)
    assert plan_dataset(cfg) == plan_dataset(cfg)
    plan = plan_dataset(cfg)[1]
    frames_a, fps_a, scene_a = render_clip(cfg, plan)
    frames_b, fps_b, scene_b = render_clip(cfg, plan)
    assert fps_a == fps_b and scene_a == scene_b
    assert all(np.array_equal(a, b) for a, b in zip(frames_a, frames_b, strict=True))
    other = render_clip(cfg.model_copy(update={"seed": 6}), plan)[0]
    assert not np.array_equal(frames_a[0], other[0])


def test_clips_vary_in_length_and_rate(tmp_path):
    cfg = SynthConfig(out=tmp_path, classes=2, clips_per_class=6, size=32)
    shapes = {(len(f), fps) for f, fps, _ in (render_clip(cfg, p) for p in plan_dataset(cfg))}
    assert len({fps for _, fps in shapes}) > 1 and len({n for n, _ in shapes}) > 1


def test_walking_left_and_right_share_every_pose():
    # One frame cannot tell the walking directions apart: only the motion over time does.
    actor = Actor.sample(0, 0)
    style = Style(1.0, 0, 0.3)
    left, right = ACTION_NAMES.index("walking left"), ACTION_NAMES.index("walking right")
    for t in np.linspace(0, 2, 9):
        a = skeleton(actor, pose_at(left, t, 1.0, 0.0, style))
        b = skeleton(actor, pose_at(right, t, 1.0, 0.0, style))
        offset = a["hip"][0] - b["hip"][0]
        for joint in a:
            assert np.allclose((a[joint][0] - offset, a[joint][1]), b[joint])
    moved = skeleton(actor, pose_at(right, 2.0, 1.0, 0.0, style))["hip"][0] - skeleton(actor, pose_at(right, 0.0, 1.0, 0.0, style))["hip"][0]
    assert moved > 0.3


def test_every_action_moves():
    actor = Actor.sample(1, 0)
    style = Style(1.0, 1, 0.3)
    for index, name in enumerate(ACTION_NAMES):
        poses = [skeleton(actor, pose_at(index, t, 1.0, 0.3, style)) for t in np.linspace(0, 2, 12)]
        spread = max(np.ptp([p[j][k] for p in poses]) for j in poses[0] for k in (0, 1))
        assert spread > 0.05, name



def test_the_same_frames_encode_to_the_same_bytes(tmp_path):
    # x264's macroblock-tree rate control made the files (and up to 60 grey levels of the decoded frames) differ from run to
    # run, so a seed did not give the same dataset and two demo runs scored differently.
    cfg = SynthConfig(out=tmp_path, classes=3, clips_per_class=3, size=64, seed=0)
    for plan in plan_dataset(cfg)[:3]:
        frames, fps, _ = render_clip(cfg, plan)
        digests = set()
        for k in range(4):
            encode_video(tmp_path / f"{plan.index}-{k}.mp4", frames, fps)
            digests.add(hashlib.sha256((tmp_path / f"{plan.index}-{k}.mp4").read_bytes()).hexdigest())
        assert len(digests) == 1, f"clip {plan.index} encoded to {len(digests)} different files"


def test_an_interrupted_generation_leaves_no_finished_marker(tmp_path, monkeypatch):
    # The demo reuses a dataset whose synth_config.yaml matches; a run killed half-way must not leave one.
    from tinyact.data.synth import generator
    from tinyact.data.synth.generator import generate

    cfg = SynthConfig(out=tmp_path, classes=2, clips_per_class=3, size=32, workers=1)
    generate(cfg)
    assert (tmp_path / "synth_config.yaml").is_file()

    def killed(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(generator, "_write_clip", killed)
    with pytest.raises(KeyboardInterrupt):
        generate(cfg)
    assert not (tmp_path / "synth_config.yaml").exists()


def test_a_longer_take_of_a_plan_keeps_its_action_actor_and_frame_rate(tmp_path):
    cfg = SynthConfig(out=tmp_path, classes=3, clips_per_class=3, size=32, seed=0, min_seconds=1.0, max_seconds=1.5)
    plan = plan_dataset(cfg)[0]
    frames, fps, _ = render_clip(cfg, plan)
    take, take_fps, _ = render_clip(cfg, plan, min_seconds=4.0)
    assert take_fps == fps and len(frames) <= 1.5 * fps + 1 and len(take) == round(4.0 * fps)
    assert render_clip(cfg, plan, min_seconds=0.5)[0][0].tobytes() == frames[0].tobytes()  # shorter: the clip itself
