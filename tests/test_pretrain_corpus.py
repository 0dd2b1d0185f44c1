"""The pretraining corpus (tinyact data synth --profile pretrain) and supervised pretraining end to end on a
tiny configuration: determinism, styles, views, actor splits, resume, and the real-footage probe (on
generated, really encoded videos)."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from tinyact.cli import app
from tinyact.data.encode import encode_video
from tinyact.data.synth.actions import Style
from tinyact.data.synth.corpus import CorpusConfig, clip_split, render_corpus_clip
from tinyact.data.synth.corpus_files import CorpusDataset, build_corpus
from tinyact.data.synth.figure import Actor, skeleton
from tinyact.data.synth.motions import MOTION_NAMES, MOTIONS, apply_view, grounded, pose_of
from tinyact.errors import ConfigError
from tinyact.training.pretrain import (
    PretrainConfig,
    ProbeSpec,
    augment,
    encode_clips,
    load_probe,
    pretrain,
    probe_accuracy,
)

TINY = {"channels": [4, 8, 8, 16], "latent_dim": 32}


def tiny_corpus(root: Path, clips: int = 75, **overrides) -> CorpusConfig:
    return CorpusConfig(out=root, clips=clips, size=24, frames=6, actors=30, shard_size=25, workers=1,
                        min_canvas=48, max_canvas=64, **overrides)


def test_at_least_24_everyday_classes_with_a_no_action_class():
    assert len(MOTIONS) >= 24 and len(set(MOTION_NAMES)) == len(MOTION_NAMES)
    assert {"walk", "run", "skip", "gallop sideways", "jump forward", "jump in place", "jumping jacks", "bend",
            "wave one hand", "wave two hands", "fall", "sit down", "standing"} <= set(MOTION_NAMES)


def test_a_clip_is_the_same_for_the_same_seed_and_index_and_differs_across_indices(tmp_path):
    cfg = tiny_corpus(tmp_path)
    a, info_a = render_corpus_clip(cfg, 7)
    b, info_b = render_corpus_clip(cfg, 7)
    assert a.dtype == np.uint8 and a.shape == (6, 3, 24, 24)
    assert np.array_equal(a, b) and info_a == info_b
    assert not np.array_equal(a, render_corpus_clip(cfg, 8)[0])
    other_seed = render_corpus_clip(cfg.model_copy(update={"seed": 1}), 7)[0]
    assert not np.array_equal(a, other_seed)


def test_classes_are_balanced_and_test_actors_never_train(tmp_path):
    cfg = tiny_corpus(tmp_path, clips=25 * 20)
    plans = [clip_split(cfg, i) for i in range(cfg.clips)]
    actors = {s: {a for _, split, a in plans if split == s} for s in ("train", "val", "test")}
    assert actors["test"] and actors["val"] and not (actors["test"] & actors["train"]) and not (actors["val"] & actors["train"])
    for split in ("train", "val", "test"):
        counts = np.bincount([label for label, s, _ in plans if s == split], minlength=len(MOTIONS))
        assert counts.min() == counts.max() > 0, split


@pytest.mark.parametrize("style", ["rgb", "grey", "ir", "mask"])
def test_each_rendering_style(tmp_path, style):
    cfg = tiny_corpus(tmp_path, style_weights={style: 1.0})
    for index in range(4):
        clip, info = render_corpus_clip(cfg, index)
        assert info.style.startswith(style)
        pixels = clip.astype(np.int16)
        grey = np.abs(pixels[:, 0] - pixels[:, 1]).max() + np.abs(pixels[:, 1] - pixels[:, 2]).max()
        if style == "rgb":
            continue
        assert grey <= 3 * 2, f"{style} clips are grey (R = G = B, up to JPEG rounding)"
        if style == "mask":
            share_extreme = np.mean((clip < 40) | (clip > 215))
            assert share_extreme > 0.9, "a foreground mask is (nearly) black and white"
        if style == "ir":
            assert np.percentile(clip, 50) < 140, "infrared-like scenes are dim"


def test_views_foreshorten_the_swing_that_points_at_the_camera():
    walk = MOTIONS[MOTION_NAMES.index("walk")]
    jacks = MOTIONS[MOTION_NAMES.index("jumping jacks")]
    style = Style(1.0, 0, 0.3)
    pose = pose_of(walk, 0.3, 2.0, 1.0, math.pi / 2, style)
    side, front = apply_view(pose, walk, 1.0), apply_view(pose, walk, 0.0)
    assert abs(front.leg_upper[0]) < abs(side.leg_upper[0])  # a stride is seen from the side
    assert front.leg_foreshorten[0] < side.leg_foreshorten[0]
    pose = pose_of(jacks, 0.5, 2.0, 1.0, math.pi, style)
    assert abs(apply_view(pose, jacks, 0.0).arm_upper[1]) > abs(apply_view(pose, jacks, 1.0).arm_upper[1])


def test_grounded_poses_stand_on_the_floor_and_falls_end_lying():
    actor = Actor.sample(0, 0)
    fall = MOTIONS[MOTION_NAMES.index("fall")]
    for name in ("squat", "sit down", "crouch", "fall"):
        motion = MOTIONS[MOTION_NAMES.index(name)]
        pose = grounded(actor, pose_of(motion, 1.9, 2.0, 1.0, 0.0, Style(1.0, 0, 0.3)))
        lowest = max(y for _, y in skeleton(actor, pose).values())
        assert abs(lowest + actor.limb_thickness * 0.3) < 1e-6, name
    lying = grounded(actor, pose_of(fall, 1.9, 2.0, 1.0, 0.0, Style(1.0, 0, 0.3)))
    joints = skeleton(actor, lying)
    assert abs(joints["head"][1] - joints["ankle0"][1]) < 0.3  # head and feet at about the same height


def test_build_is_resumable_and_independent_of_the_worker_count(tmp_path):
    one = tiny_corpus(tmp_path / "one", clips=125)  # 5 blocks of 25 classes: test, test, val, val, train
    build_corpus(one)
    first = np.load(tmp_path / "one" / "shard-00001.npy")
    (tmp_path / "one" / "shard-00001.npy").unlink()  # a killed build: the next run renders only what is missing
    build_corpus(one)
    assert np.array_equal(np.load(tmp_path / "one" / "shard-00001.npy"), first)
    two = tiny_corpus(tmp_path / "two", clips=125).model_copy(update={"workers": 2})
    build_corpus(two)
    for shard in ("shard-00000.npy", "shard-00001.npy"):
        assert np.array_equal(np.load(tmp_path / "one" / shard), np.load(tmp_path / "two" / shard))
    data = CorpusDataset(tmp_path / "one", "train")
    clip, label = data[0]
    assert clip.shape == (6, 3, 24, 24) and 0 <= label < len(MOTIONS)
    with pytest.raises(Exception, match="other settings"):
        build_corpus(tiny_corpus(tmp_path / "one", clips=125, seed=3))


def test_augment_keeps_shape_dtype_and_range():
    clips = torch.randint(0, 256, (4, 6, 3, 24, 24), dtype=torch.uint8)
    out = augment(clips, torch.Generator().manual_seed(0), crop_scale=0.7)
    assert out.shape == clips.shape and out.dtype == torch.uint8
    assert not torch.equal(out, clips)


def _probe_folder(root: Path) -> tuple[Path, Path]:
    """Real encoded videos: a bright square moving left-right vs up-down, 4 'persons' each."""
    rows = ["path,split"]
    for cls in ("horizontal", "vertical"):
        for k, split in enumerate(["train", "train", "val", "test"]):
            frames = []
            for t in range(12):
                image = np.zeros((32, 32, 3), np.uint8)
                shift = 4 + (t * 2 + k) % 20
                y, x = (12, shift) if cls == "horizontal" else (shift, 12)
                image[y : y + 8, x : x + 8] = 255
                frames.append(image)
            path = root / cls / f"p{k}_{cls}.mkv"
            encode_video(path, frames, 12)
            rows.append(f"{cls}/p{k}_{cls}.mkv,{split}")
    (root.parent / "split.csv").write_text("\n".join(rows) + "\n")
    return root, root.parent / "split.csv"


def test_pretraining_end_to_end_resumes_exactly_and_reads_the_probe(tmp_path):
    corpus = tiny_corpus(tmp_path / "corpus", clips=125)
    build_corpus(corpus)
    folder, split = _probe_folder(tmp_path / "probe" / "videos")
    base = dict(corpus=tmp_path / "corpus", epochs=2, batch_size=8, max_batches=3, model_overrides=TINY, threads=1,
                probes=[ProbeSpec(name="boxes", data=folder, split_file=split, folds=2)])
    straight = pretrain(PretrainConfig(out=tmp_path / "a", **base))
    assert straight.model.is_file() and (tmp_path / "a" / "curves.png").is_file()
    rows = (tmp_path / "a" / "metrics.csv").read_text().splitlines()
    assert len(rows) == 3 and "probe_boxes" in rows[0] and "val_top1" in rows[0]
    # The probe never reads the test split: 3 non-test clips per class were cached.
    cached = list((tmp_path / "a" / "probe-cache").glob("*/index.csv"))[0].read_text().splitlines()
    assert len(cached) == 1 + 6
    pretrain(PretrainConfig(out=tmp_path / "b", session_epochs=1, **base))  # one session stops after epoch 1
    resumed = pretrain(PretrainConfig(out=tmp_path / "b", **base), resume=True)
    a = torch.load(tmp_path / "a" / "last.pt", weights_only=False)["model"]
    b = torch.load(tmp_path / "b" / "last.pt", weights_only=False)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert resumed.epoch == straight.epoch
    with pytest.raises(Exception, match="--resume"):
        pretrain(PretrainConfig(out=tmp_path / "a", **base))


def test_synth_cli_pretrain_profile(tmp_path):
    config = tmp_path / "corpus.yaml"
    config.write_text("size: 24\nframes: 4\nactors: 30\nshard_size: 25\nworkers: 1\nmin_canvas: 48\nmax_canvas: 64\n")
    result = CliRunner().invoke(app, ["data", "synth", "--profile", "pretrain", "--out", str(tmp_path / "c"),
                                      "--clips", "50", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "c" / "clips.csv").is_file() and (tmp_path / "c" / "preview.png").stat().st_size > 0
    bad = CliRunner().invoke(app, ["data", "synth", "--profile", "nope", "--out", str(tmp_path / "d")])
    assert bad.exit_code != 0 and "pretrain" in bad.output


def test_motion_variants_draw_the_other_way_of_doing_an_action(tmp_path):
    kick = MOTION_NAMES.index("kick")
    plain = tiny_corpus(tmp_path, motion_variants=0.0)
    both = tiny_corpus(tmp_path, motion_variants=1.0)
    a, _ = render_corpus_clip(plain, kick)
    b, _ = render_corpus_clip(both, kick)
    assert not np.array_equal(a, b)  # a sideways kick instead of a forward one
    walk = MOTION_NAMES.index("walk")  # no variant: the same clip either way
    assert np.array_equal(render_corpus_clip(plain, walk)[0], render_corpus_clip(both, walk)[0])
    variant = MOTIONS[kick].as_variant()
    assert variant.plane == "frontal" and variant.variant is None


def test_a_later_stage_starts_from_the_earlier_model_and_keeps_it_unless_the_probe_improves(tmp_path):
    from tinyact.models.checkpoint import load_model, state_dict_hash
    from tinyact.training.zoo_build import read_recipe, recipe_stages

    corpus = tiny_corpus(tmp_path / "corpus", clips=125)
    build_corpus(corpus)
    folder, split = _probe_folder(tmp_path / "probe" / "videos")
    base = dict(corpus=tmp_path / "corpus", batch_size=8, max_batches=2, model_overrides=TINY, threads=1,
                probes=[ProbeSpec(name="boxes", data=folder, split_file=split, folds=2)])
    first = pretrain(PretrainConfig(out=tmp_path / "s1", epochs=1, **base))
    second = pretrain(PretrainConfig(out=tmp_path / "s2", epochs=1, init=first.model, lr=1e-9, lr_min=0, **base))
    start, _ = load_model(first.model)
    chosen, info = load_model(second.model)
    metrics = (tmp_path / "s2" / "metrics.csv").read_text().splitlines()
    start_score = info["extra"]["selection"]["score"] if info["extra"]["epoch"] == -1 else None
    if start_score is not None:  # nothing beat the start: the start itself is kept, bit for bit
        assert state_dict_hash(chosen.state_dict()) == state_dict_hash(start.state_dict())
    else:  # an epoch was kept only because it probed strictly better than the start
        epoch_score = float(metrics[1].split(",")[metrics[0].split(",").index("score")])
        assert info["extra"]["epoch"] == 0 and info["extra"]["selection"]["score"] == epoch_score
    stages = recipe_stages(read_recipe("everyday-64"))
    assert len(stages) >= 1 and all({"corpus", "pretrain"} <= set(s) for s in stages)
    assert all(s["pretrain"].get("init") == "previous" for s in stages[1:])


@pytest.fixture(scope="module")
def heldout_inputs(tmp_path_factory) -> list[str]:
    """zoo_heldout's arguments for a tiny corpus and a tiny random encoder."""
    from tinyact.models.autoencoder3d import VideoAutoEncoder3D
    from tinyact.models.checkpoint import save_model

    folder = tmp_path_factory.mktemp("heldout")
    build_corpus(tiny_corpus(folder / "corpus", clips=120))
    torch.manual_seed(0)
    save_model(folder / "enc.pt", VideoAutoEncoder3D(num_frames=6, input_size=24, channels=(4, 8, 8, 8), latent_dim=16))
    return ["--corpus", str(folder / "corpus"), "--encoder", str(folder / "enc.pt"), "--train-clips", "60"]


def test_the_heldout_benchmark_chooses_classifier_and_reading_on_val(heldout_inputs, tmp_path):
    from benchmarks.zoo_heldout import READINGS, main

    result = main([*heldout_inputs, "--json", str(tmp_path / "r.json"), "--failures", str(tmp_path / "f.png"),
                   "--classifiers", "logistic,svm"])
    # 2 readings x (3 values of C + the SVM's 6 grid points)
    assert result["chosen_reading"] in READINGS and len(result["val_top1"]) == 2 * (3 + 6)
    best = result["val_top1"][f"{result['chosen_reading']} {result['chosen_classifier']}"]
    assert best == max(result["val_top1"].values()) and 0 <= result["test_top1"] <= 1
    by_kind = result["by_classifier"]
    assert set(by_kind) == {"logistic", "svm"} and max(v["val_top1"] for v in by_kind.values()) == best
    chosen_kind = by_kind[result["chosen_classifier"].split()[0]]
    assert chosen_kind["test_top1"] == result["test_top1"]  # the overall choice is its classifier's own choice
    for factor in ("style", "view", "camera", "person_area"):  # the overall top-1: a weighted mean of the groups'
        groups = result[f"test_top1_by_{factor}"]
        assert groups and min(groups.values()) <= result["test_top1"] <= max(groups.values())
    assert {s.removesuffix("-inverted") for s in result["test_top1_by_style"]} <= {"rgb", "grey", "ir", "mask"}
    assert result["train_top1_by_person_area"] and all(0 <= v <= 1 for v in result["train_top1_by_person_area"].values())
    correct = result["test_correct"]  # clip by clip, for paired comparisons of two encoders
    assert len(correct) == result["n_test"] and set(correct) <= {"0", "1"}
    assert correct.count("1") / result["n_test"] == pytest.approx(result["test_top1"])
    assert (tmp_path / "r.json").is_file()
    assert result["test_top1"] == 1 or (tmp_path / "f.png").stat().st_size > 1000  # failures drawn when there are some


def test_the_heldout_benchmark_can_also_read_through_the_motion_crop(heldout_inputs):
    from benchmarks.zoo_heldout import CROP_READINGS, READINGS, main

    result = main([*heldout_inputs, "--motion-crop"])
    readings = {key.rsplit(" logistic", 1)[0] for key in result["val_top1"]}
    assert readings == set(READINGS + CROP_READINGS) and len(result["val_top1"]) == 5 * 3
    assert result["chosen_reading"] in readings


def test_a_person_disjoint_probe_does_not_reward_latents_that_recognise_the_person():
    # Latents that carry only who the person is, and classes that go with the person in this small set: folds
    # that mix persons score them perfectly, leave-one-person-out sees through it.
    rng = np.random.default_rng(0)
    persons = np.repeat(np.arange(6), 6)
    labels = (persons >= 3).astype(int)
    latents = rng.normal(size=(6, 20))[persons] + 0.01 * rng.normal(size=(36, 20))
    assert probe_accuracy(latents, labels, folds=3) == 1.0
    assert probe_accuracy(latents, labels, folds=3, groups=persons.astype(str)) <= 0.7
    # Latents that carry the class generalise to new persons either way.
    telling = np.c_[labels, rng.normal(size=(36, 5))] + 0.1 * rng.normal(size=(36, 6))
    assert probe_accuracy(telling, labels, folds=3, groups=persons.astype(str)) == 1.0
    with pytest.raises(ConfigError, match="two persons"):
        probe_accuracy(telling, labels, folds=3, groups=np.zeros(36).astype(str))


def test_load_probe_reads_each_clips_person(tmp_path):
    folder, split = _probe_folder(tmp_path / "probe" / "videos")
    paths = [line.split(",")[0] for line in split.read_text().splitlines()[1:]]
    persons = tmp_path / "persons.csv"
    persons.write_text("path,person\n" + "".join(f"{p},{Path(p).name.split('_')[0]}\n" for p in paths))
    spec = ProbeSpec(name="boxes", data=folder, split_file=split, persons_file=persons)
    probe = load_probe(spec, frames=4, size=16, cache_root=tmp_path / "cache")
    assert probe.groups is not None and sorted(set(probe.groups)) == ["p0", "p1", "p2"]  # p3 is the test person
    assert probe.accuracy(np.eye(2)[probe.labels] + 0.01 * np.random.default_rng(0).normal(size=(6, 2))) == 1.0
    persons.write_text("path,person\n" + "".join(f"{p},x\n" for p in paths[1:]))
    with pytest.raises(ConfigError, match="names no person"):
        load_probe(spec, frames=4, size=16, cache_root=tmp_path / "cache2")


def test_a_stage_that_grows_the_model_starts_from_exactly_what_the_earlier_stage_chose(tmp_path, caplog):
    from tinyact.models.checkpoint import load_model

    corpus = tiny_corpus(tmp_path / "corpus", clips=125)
    build_corpus(corpus)
    folder, split = _probe_folder(tmp_path / "probe" / "videos")
    base = dict(corpus=tmp_path / "corpus", batch_size=8, max_batches=2, threads=1,
                probes=[ProbeSpec(name="boxes", data=folder, split_file=split, folds=2)])
    first = pretrain(PretrainConfig(out=tmp_path / "s1", epochs=1, model_overrides=TINY, **base))
    grown = {**TINY, "stage_blocks": [1, 0, 0, 1]}
    with caplog.at_level("INFO", logger="tinyact.training.pretrain"):
        second = pretrain(PretrainConfig(out=tmp_path / "s2", epochs=1, init=first.model, model_overrides=grown,
                                         **base))
    # The grown start computes the earlier model's latents, so it probes exactly as that model did when chosen.
    assert f"'probe_boxes': {first.metrics['probe_boxes']!r}" in caplog.text
    model, _ = load_model(second.model)
    assert model.config.stage_blocks == (1, 0, 0, 1)
    with pytest.raises(ConfigError, match="cannot grow"):
        pretrain(PretrainConfig(out=tmp_path / "s3", epochs=1, init=first.model,
                                model_overrides={**TINY, "channels": [4, 8, 8, 32]}, **base))


@pytest.mark.parametrize(("tie_break", "row", "replaces"), [
    ("earlier", {"score": 0.9, "val_top1": 0.7}, False),    # a tie keeps the kept model
    ("val_top1", {"score": 0.9, "val_top1": 0.7}, True),    # ... unless it learned more of the corpus
    ("val_top1", {"score": 0.9, "val_top1": 0.5}, False),
    ("earlier", {"score": 0.95, "val_top1": 0.1}, True),    # a higher probe score always replaces it
    ("val_top1", {"score": 0.85, "val_top1": 0.99}, False),
])
def test_selection_tie_break(tie_break, row, replaces):
    from types import SimpleNamespace

    from tinyact.training.pretrain import SupervisedPretraining

    cfg = PretrainConfig(corpus=Path("c"), out=Path("o"), tie_break=tie_break)
    kept_epoch = SimpleNamespace(cfg=cfg, best={"score": 0.9, "epoch": 2, "val_top1": 0.6}, start_scores={})
    assert SupervisedPretraining.replaces_kept(kept_epoch, row) is replaces
    start = SimpleNamespace(cfg=cfg, best={"score": 0.9, "epoch": -1}, start_scores={})  # no corpus val top-1
    assert SupervisedPretraining.replaces_kept(start, {**row, "score": 0.9}) is (tie_break == "val_top1")


@pytest.mark.parametrize(("losses", "val_top1", "replaces"), [
    ((2, 0), 0.8, True),     # no more than 2 clips lost on either probe, and more of the corpus learned
    ((-3, 0), 0.8, True),    # clips gained count as within too
    ((3, 0), 0.99, False),   # one probe beyond the margin, however much of the corpus was learned
    ((2, -1), 0.5, False),   # within the margin, but less of the corpus than the kept epoch
])
def test_a_start_margin_rule(losses, val_top1, replaces):
    from types import SimpleNamespace

    from tinyact.training.pretrain import SupervisedPretraining

    specs = [ProbeSpec(name=n, data=Path(n), persons_file=Path("p.csv")) for n in ("a", "b")]
    cfg = PretrainConfig(corpus=Path("c"), out=Path("o"), init=Path("s.pt"), start_margin=2, probes=specs)
    kept = SimpleNamespace(cfg=cfg, probes=[SimpleNamespace(spec=spec) for spec in specs],
                           start_scores={"probe_a": 0.9, "probe_b": 1.0}, best={"score": 0.9, "epoch": 1, "val_top1": 0.6})
    row = {"score": 0.1, "val_top1": val_top1, "net_loss_a": losses[0], "net_loss_b": losses[1]}  # score unused
    assert SupervisedPretraining.replaces_kept(kept, row) is replaces


def test_the_paired_probe_counts_the_clips_only_one_encoder_gets_right(tmp_path):
    from benchmarks.probe_paired import compare, mcnemar_p
    from tinyact.models.autoencoder3d import VideoAutoEncoder3D

    assert mcnemar_p(0, 0) == 1.0 and mcnemar_p(3, 3) == 1.0
    assert mcnemar_p(5, 0) == pytest.approx(2 / 2**5) and mcnemar_p(0, 5) == mcnemar_p(5, 0)
    folder, split = _probe_folder(tmp_path / "probe" / "videos")
    paths = [line.split(",")[0] for line in split.read_text().splitlines()[1:]]
    persons = tmp_path / "persons.csv"
    persons.write_text("path,person\n" + "".join(f"{p},{Path(p).name.split('_')[0]}\n" for p in paths))
    spec = ProbeSpec(name="boxes", data=folder, split_file=split, persons_file=persons)
    torch.manual_seed(0)
    model = VideoAutoEncoder3D(num_frames=6, input_size=24, channels=(4, 8, 8, 8), latent_dim=16)
    other = VideoAutoEncoder3D(num_frames=6, input_size=24, channels=(4, 8, 8, 8), latent_dim=16)
    (same,) = compare({"a": model, "b": model}, [spec], None, tmp_path / "cache")
    assert (same["clips"], same["persons"]) == (6, 3) and same["top1_a"] == same["top1_b"]
    assert (same["only_a"], same["only_b"], same["mcnemar_p"]) == (0, 0, 1.0)
    (row,) = compare({"a": model, "b": other}, [spec], None, tmp_path / "cache")
    # Each encoder's accuracy is what the clips only it gets right make of the other's.
    assert row["top1_a"] - row["top1_b"] == pytest.approx((row["only_a"] - row["only_b"]) / row["clips"])


def test_a_start_margin_keeps_the_epoch_that_learned_most_among_those_within_it(tmp_path):
    corpus = tiny_corpus(tmp_path / "corpus", clips=125)
    build_corpus(corpus)
    folder, split = _probe_folder(tmp_path / "probe" / "videos")
    paths = [line.split(",")[0] for line in split.read_text().splitlines()[1:]]
    persons = tmp_path / "persons.csv"
    persons.write_text("path,person\n" + "".join(f"{p},{Path(p).name.split('_')[0]}\n" for p in paths))
    probe = ProbeSpec(name="boxes", data=folder, split_file=split, persons_file=persons)
    base = dict(corpus=tmp_path / "corpus", batch_size=8, max_batches=2, model_overrides=TINY, threads=1,
                probes=[probe])
    first = pretrain(PretrainConfig(out=tmp_path / "s1", epochs=1, **base))
    with pytest.raises(ValueError, match="person-disjoint"):
        PretrainConfig(out=tmp_path / "x", init=first.model, start_margin=1,
                       **{**base, "probes": [ProbeSpec(name="boxes", data=folder, split_file=split)]})
    with pytest.raises(ValueError, match="init"):
        PretrainConfig(out=tmp_path / "x", start_margin=1, **base)

    cfg = PretrainConfig(out=tmp_path / "s2", epochs=2, init=first.model, start_margin=100, session_epochs=1, **base)
    pretrain(cfg)
    second = pretrain(cfg, resume=True)  # the start's right clips come back from the checkpoint
    rows = list(csv.DictReader((tmp_path / "s2" / "metrics.csv").open()))
    assert len(rows) == 2 and all(row["net_loss_boxes"] != "" for row in rows)
    # Every epoch is within a margin of 100 clips: the one with the highest corpus val top-1 is kept, not the start.
    val = [float(row["val_top1"]) for row in rows]
    assert second.epoch == int(np.argmax(val)) and second.metrics["val_top1"] == max(val)
    # A net loss of n clips is the probe's accuracy n clips below the start's, as measured here independently.
    from tinyact.models.checkpoint import load_model

    start_model, _ = load_model(first.model)
    data = load_probe(probe, 6, 24, tmp_path / "cache")
    start_top1 = data.accuracy(encode_clips(start_model, data.clips, torch.device("cpu")))
    for row in rows:
        loss = float(row["net_loss_boxes"])
        assert float(row["probe_boxes"]) == pytest.approx(start_top1 - loss / len(data.labels))
