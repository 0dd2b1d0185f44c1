"""Dataset layouts (Kinetics CVDF, annotation list, folder) and the manifest with balanced sampling."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import pytest

from tests.conftest import ramp_frames
from tinyact.data.encode import encode_video
from tinyact.data.layouts import kinetics_file_name, read_annotation_list, read_folder, read_kinetics
from tinyact.data.manifest import Manifest, ManifestEntry, balance, stratified_split
from tinyact.errors import DatasetError


def _video(path: Path) -> Path:
    encode_video(path, ramp_frames(20, 16, 16), 25)
    return path


def _write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def test_kinetics_csv_with_missing_videos_and_extra_columns(tmp_path):
    root = tmp_path / "k400"
    rows = [
        ["abseiling", "aaaaaaaaaaa", 10, 20, "train", 1],
        ["abseiling", "bbbbbbbbbbb", 0, 10, "train", 0],
        ["zumba", "ccccccccccc", 5, 15, "train", 1],
        ["zumba", "missing0000", 1, 11, "train", 1],
    ]
    for _label, yt, start, end, _, _ in rows[:3]:
        _video(root / "train" / kinetics_file_name(yt, start, end))
    _write_csv(root / "annotations" / "train.csv", ["label", "youtube_id", "time_start", "time_end", "split", "is_cc"], rows)
    entries, report = read_kinetics(root, splits=("train",))
    assert [e.clip_id for e in entries] == ["aaaaaaaaaaa_000010_000020", "bbbbbbbbbbb_000000_000010", "ccccccccccc_000005_000015"]
    assert entries[0].path == "train/aaaaaaaaaaa_000010_000020.mp4"
    assert entries[0].extra == {"is_cc": "1"}
    assert report.listed == 4 and report.missing == 1
    assert "not on disk" in report.problems[0][1]


def test_kinetics_per_class_folder_variant(tmp_path):
    root = tmp_path / "k400"
    _video(root / "val" / "air drumming" / kinetics_file_name("xxxxxxxxxxx", 3, 13))
    _write_csv(root / "annotations" / "val.csv", ["label", "youtube_id", "time_start", "time_end", "split"],
               [["air drumming", "xxxxxxxxxxx", 3.0, 13.0, "val"]])
    entries, report = read_kinetics(root)
    assert len(entries) == 1 and entries[0].path == "val/air drumming/xxxxxxxxxxx_000003_000013.mp4"
    assert entries[0].split == "val" and report.missing == 0


def test_kinetics_without_annotations_is_a_clear_error(tmp_path):
    with pytest.raises(DatasetError, match="no annotations/ folder") as plain:
        read_kinetics(tmp_path)
    assert "--layout folder" not in str(plain.value)
    _video(tmp_path / "wave" / "a.mp4")  # a folder of class sub-folders: the error names the layout it needs
    with pytest.raises(DatasetError, match="no annotations/ folder.*--layout folder"):
        read_kinetics(tmp_path)
    with pytest.raises(DatasetError, match="dataset folder not found"):
        read_kinetics(tmp_path / "typo")


def test_annotation_list_names_and_indices(tmp_path):
    _video(tmp_path / "a" / "one clip.mp4")
    _video(tmp_path / "b" / "two.mkv")
    listing = tmp_path / "train_list.txt"
    listing.write_text("# comment\na/one clip.mp4 1\nb/two.mkv zumba\nc/gone.mp4 0\n")
    entries, report = read_annotation_list(listing, tmp_path, "train", label_names=["abseiling", "zumba"])
    assert [(e.path, e.label) for e in entries] == [("a/one clip.mp4", "zumba"), ("b/two.mkv", "zumba")]
    assert report.missing == 1
    with pytest.raises(DatasetError, match="label names"):
        read_annotation_list(listing, tmp_path, "train")


def test_folder_layout_with_split_file(tmp_path):
    for cls in ("clap", "wave"):
        for i in range(3):
            _video(tmp_path / cls / f"{cls}{i}.mp4")
    _write_csv(tmp_path / "splits.csv", ["path", "split"],
               [["clap/clap0.mp4", "train"], ["clap/clap1.mp4", "val"], ["clap/clap2.mp4", "test"],
                ["wave/wave0.mp4", "train"], ["wave/wave1.mp4", "test"], ["wave/ghost.mp4", "train"]])
    entries, report = read_folder(tmp_path, split_file=tmp_path / "splits.csv")
    by_path = {e.path: e.split for e in entries}
    assert by_path == {"clap/clap0.mp4": "train", "clap/clap1.mp4": "val", "clap/clap2.mp4": "test",
                       "wave/wave0.mp4": "train", "wave/wave1.mp4": "test"}
    reasons = dict(report.problems)
    assert "not in split file" in reasons["wave/wave2.mp4"]
    assert "not on disk" in reasons["wave/ghost.mp4"]


def test_folder_layout_without_split_file_is_stratified_and_seeded(tmp_path):
    for cls in ("clap", "wave"):
        for i in range(5):
            _video(tmp_path / cls / f"{i}.mp4")
    entries, _ = read_folder(tmp_path, seed=1)
    again, _ = read_folder(tmp_path, seed=1)
    assert entries == again
    for cls in ("clap", "wave"):
        splits = Counter(e.split for e in entries if e.label == cls)
        assert splits == {"train": 3, "val": 1, "test": 1}


def _entries(counts: dict[str, int], split: str = "train") -> list[ManifestEntry]:
    return [ManifestEntry(f"{label}/{i}.mp4", label, split, f"{split}-{label}-{i}") for label, n in counts.items() for i in range(n)]


def test_balanced_sampling_equal_counts_no_repeats_seeded():
    entries = _entries({"a": 10, "b": 7, "c": 12}) + _entries({"a": 3, "b": 5, "c": 4}, "val")
    picked = balance(entries, seed=3)
    train = Counter(e.label for e in picked if e.split == "train")
    val = Counter(e.label for e in picked if e.split == "val")
    assert train == {"a": 7, "b": 7, "c": 7} and val == {"a": 3, "b": 3, "c": 3}
    assert len({e.clip_id for e in picked}) == len(picked)
    assert balance(entries, seed=3) == picked
    assert balance(entries, seed=4) != picked
    capped = balance(entries, per_class=2, seed=0)
    assert Counter(e.label for e in capped if e.split == "train") == {"a": 2, "b": 2, "c": 2}


def test_stratified_split_keeps_every_split_per_class():
    result = stratified_split(_entries({"a": 10, "b": 3}), seed=0)
    for label in ("a", "b"):
        assert {e.split for e in result if e.label == label} == {"train", "val", "test"}


def test_manifest_round_trip_with_relative_paths(tmp_path):
    entries = [ManifestEntry("train/x.mp4", "b", "train", "x", {"actor": "3"}),
               ManifestEntry("/abs/y.mp4", "a", "test", "y")]
    manifest = Manifest(entries, tmp_path)
    manifest.write(tmp_path / "manifest.csv")
    loaded = Manifest.read(tmp_path / "manifest.csv")
    assert loaded.label_names == ["a", "b"] and loaded.label_index("b") == 1
    assert loaded.resolve(loaded.entries[0]) == tmp_path.resolve() / "train/x.mp4"
    assert str(loaded.resolve(loaded.entries[1])) == "/abs/y.mp4"
    assert loaded.entries[0].extra == {"actor": "3"}
    assert len(loaded.split("test")) == 1 and loaded.split("test").label_names == ["a", "b"]


def test_manifest_rejects_duplicates_and_bad_rows(tmp_path):
    with pytest.raises(DatasetError, match="duplicate clip_id"):
        Manifest([ManifestEntry("a", "x", "train", "id"), ManifestEntry("b", "x", "train", "id")], tmp_path)
    bad = tmp_path / "bad.csv"
    bad.write_text("path,label,split,clip_id\na.mp4,x,training,a\n")
    with pytest.raises(DatasetError, match="split must be one of"):
        Manifest.read(bad)
    (tmp_path / "nocols.csv").write_text("file,label\n")
    with pytest.raises(DatasetError, match="missing column"):
        Manifest.read(tmp_path / "nocols.csv")
