"""``benchmarks/real_footage.py --quick`` runs end to end on a tiny generated folder dataset (never ../shared)
with the zoo encoder, and writes its result file with the promised keys and sane values."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tinyact.data.encode import encode_video  # noqa: E402

FPS, FRAMES, H, W = 25, 30, 72, 96  # 1.2 s, 4:3 frames: the resize and centre crop are exercised
CLASSES = ("slide", "drop", "pulse")
PERSONS = {"ann": "train", "bob": "train", "cid": "val", "dee": "test"}


def motion(kind: str, person: int) -> np.ndarray:
    """A bright shape on a dark background: ``slide`` moves right, ``drop`` moves down, ``pulse`` grows and
    shrinks in place; the "person" changes its colour, size and phase. uint8 ``[F, H, W, 3]``."""
    frames = np.full((FRAMES, H, W, 3), 20 + 10 * person, dtype=np.uint8)
    colour = np.array([200, 120 + 30 * person, 80 + 40 * person], dtype=np.uint8)
    half = 7 + person
    yy, xx = np.mgrid[:H, :W]
    for t in range(FRAMES):
        phase = (t + 3 * person) / FRAMES
        if kind == "slide":
            cy, cx, r = H // 2, int(10 + phase * (W - 20)) % W, half
        elif kind == "drop":
            cy, cx, r = int(8 + phase * (H - 16)) % H, W // 2, half
        else:
            cy, cx, r = H // 2, W // 2, int(half * (1 + 0.8 * np.sin(2 * np.pi * 2 * phase)))
        frames[t][(abs(yy - cy) <= r) & (abs(xx - cx) <= r)] = colour
    return frames


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory) -> tuple[Path, Path]:
    """ROOT/<class>/<person>_<class>.mp4 (3 classes x 4 persons, H.264) and a person-disjoint split CSV."""
    root = tmp_path_factory.mktemp("real") / "tiny"
    rows = []
    for kind in CLASSES:
        for index, (person, split) in enumerate(PERSONS.items()):
            rel = f"{kind}/{person}_{kind}.mp4"
            encode_video(root / rel, motion(kind, index), FPS, crf=18)
            rows.append((rel, split))
    split_file = root.parent / "tiny-split.csv"
    with open(split_file, "w", newline="") as handle:
        csv.writer(handle).writerows([("path", "split"), *rows])
    return root, split_file


@pytest.mark.slow
def test_real_footage_quick(tiny_dataset, tmp_path):
    from benchmarks import real_footage

    root, split_file = tiny_dataset
    before = torch.get_num_threads()
    try:
        payload = real_footage.main(["--quick", "--dataset", f"tiny={root}:{split_file}", "--work", str(tmp_path / "w"),
                                     "--workers", "1", "--json", str(tmp_path / "r.json")])
    finally:
        torch.set_num_threads(before)
    saved = json.loads((tmp_path / "r.json").read_text())
    assert {"command", "machine", "load_average_1m", "datasets", "markdown"} <= set(saved)
    assert saved["encoder"] == "zoo:everyday-64" and saved["quick"] is True
    result = saved["datasets"]["tiny"]
    assert result["encoder"]["size"] == 64 and result["encoder"]["frames"] == 16 and result["encoder"]["hash"]
    assert (result["n_train"], result["n_val"], result["n_test"]) == (6, 3, 3)
    assert result["protocol"]["persons"] == {"train": ["ann", "bob"], "val": ["cid"], "test": ["dee"]}
    assert "choose on val, report test" in result["protocol"]["text"] and result["protocol"]["persons_overlap_test"] == []

    features = result["features"]
    assert set(features) == {"encoder", "raw pixels", "random encoder", "motion history"}
    rows = {"svm", "svm+mirror"}  # one classifier, each kind of features read as recorded and mirrored too
    for f in features.values():
        assert set(f["by_classifier"]) == rows and {f["val_chosen"], f["best_of_classifier"]} <= rows
        assert 0 <= f["val_chosen_test_top1"] <= f["best_of_test_top1"] <= 1  # best-of: the max over test
        assert 0 <= f["by_classifier"]["svm"]["val_top1"] <= 1
    lopo = result["leave_one_person_out"]  # 4 persons: each one's clips predicted by a fit on the other three
    assert set(lopo) == {*features, "encoder, torch-int8"}  # int8: the runtime's latents of every clip
    for scores in lopo.values():
        assert set(scores["leave_one_person_out"]) == {"as recorded", "mirrored too"}
        for key, clips in (("leave_one_person_out", 12), ("leave_one_person_out_non_test", 9)):  # non-test: 3 persons
            assert all(v * clips == pytest.approx(round(v * clips)) for v in scores[key].values())  # shares of clips
    margin = result["margin_vs_motion_history_points"]
    assert -100 <= margin["val_chosen"] <= 100 and -100 <= margin["best_of"] <= 100

    int8 = result["int8"]
    assert int8["classifier"] == features["encoder"]["val_chosen"] and int8["calibration_split"] == "train" and int8["calibration_clips"] == 6
    assert int8["int8_options"]["finetune_steps"] == 3 and int8["int8_options"]["ranges"] == "batch-mean"  # --quick
    # The saved classifier on Table 1's own latents, with Table 1's rule, gives Table 1's test top-1.
    for kind in rows:  # the +mirror row through the runtime's mirrored reading, too
        assert int8["by_classifier"][kind]["table1_rule"]["fp32_test_top1"] == pytest.approx(
            features["encoder"]["by_classifier"][kind]["test_top1"])
    svm = int8["by_classifier"]["svm"]
    assert 0 <= svm["serving_vs_table1_rule_disagreements"] <= 3 and 0 <= int8["fp32_test_top1"] <= 1
    assert 0 <= int8["int8_test_top1"] <= 1 and int8["diff_points"] == pytest.approx(
        100 * (int8["int8_test_top1"] - int8["fp32_test_top1"]), abs=0.01)
    assert 0.9 < int8["latent_cosine"] <= 1.0001 and 0 <= int8["latent_rel_l2"] < 0.5

    edge = result["edge"]
    assert edge["clips"] == 3 and 0 <= edge["edge_test_top1"] <= 1 and 0 <= edge["cache_test_top1"] <= 1
    # Same frames, same shared resize (issue 16): the edge camera's clips are the cache's pixels.
    assert edge["pixel_max_abs_diff"] <= 1 and edge["identical_clips"] >= 2
    assert edge["cache_test_top1"] == pytest.approx(int8["fp32_test_top1"])
    assert edge["cache_runtime_vs_table_latent_max_abs"] < 1e-3
    assert payload["markdown"].startswith("| dataset |")


def test_ud810_lists_split_by_person(tmp_path):
    from benchmarks.ud810_lists import main

    root = tmp_path / "ud810"
    for action, name in ((1, "arms_raise_side"), (2, "wave_one_hand")):
        for person in (1, 2, 3):
            (root / name).mkdir(parents=True, exist_ok=True)
            (root / name / f"PS7A{action}P{person}T1.avi").write_bytes(b"")  # names only: nothing is decoded
    main(root)
    with open(tmp_path / "ud810-clips.csv") as handle:
        clips = list(csv.DictReader(handle))
    with open(tmp_path / "ud810-split.csv") as handle:
        split = {row["path"]: row["split"] for row in csv.DictReader(handle)}
    assert len(clips) == 6 and {c["class"] for c in clips} == {"arms_raise_side", "wave_one_hand"}
    assert {(c["person"], split[c["path"]]) for c in clips} == {("P1", "train"), ("P2", "val"), ("P3", "test")}
    (root / "wave_one_hand" / "other.avi").write_bytes(b"")
    with pytest.raises(SystemExit, match="not a PS7A"):
        main(root)
