"""The clip cache (round trip, skipped files, resume) and ClipDataset."""

from __future__ import annotations

import csv
import logging

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from tinyact.data.cache import ClipCache, build_cache
from tinyact.data.datasets import ClipDataset, collate_clips
from tinyact.data.layouts import read_kinetics
from tinyact.data.manifest import Manifest, ManifestEntry
from tinyact.data.video import ClipSampling, read_clip
from tinyact.errors import DatasetError

SAMPLING = ClipSampling(num_frames=8, size=24, threads=False)


@pytest.fixture
def manifest(tiny_synth) -> Manifest:
    entries, _ = read_kinetics(tiny_synth)
    return Manifest(entries, tiny_synth)


@pytest.fixture
def manifest_with_bad_file(manifest, tmp_path) -> Manifest:
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00not a video" * 50)
    return Manifest([*manifest.entries, ManifestEntry(str(junk), manifest.entries[0].label, "train", "junk")], manifest.root)


def test_cache_round_trip_equals_direct_decode(manifest, tmp_path):
    result = build_cache(manifest, tmp_path / "cache", SAMPLING, workers=2, chunk_size=4)
    assert result.cached == len(manifest) and result.skipped == 0
    cache = ClipCache(tmp_path / "cache")
    assert len(cache) == len(manifest)
    for entry in manifest.entries[:5]:
        direct = read_clip(manifest.resolve(entry), SAMPLING)
        assert torch.equal(cache[entry.clip_id], direct)


def test_cache_skips_and_lists_bad_files(manifest_with_bad_file, tmp_path):
    result = build_cache(manifest_with_bad_file, tmp_path / "cache", SAMPLING, workers=1, chunk_size=4)
    assert result.skipped == 1
    with open(tmp_path / "cache" / "skipped.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["clip_id"] for r in rows] == ["junk"] and "not a readable media file" in rows[0]["reason"]
    cache = ClipCache(tmp_path / "cache")
    assert "junk" not in cache and "junk" in cache.skipped


def test_cache_resumes_after_an_interrupted_build(manifest, tmp_path):
    out = tmp_path / "cache"
    half = Manifest(manifest.entries[:6], manifest.root)
    build_cache(half, out, SAMPLING, workers=1, chunk_size=3)
    (out / "shard-deadbeef0000.npy").write_bytes(b"left by a killed run")
    result = build_cache(manifest, out, SAMPLING, workers=1, chunk_size=3)
    assert result.already_done == 6 and result.cached == len(manifest) - 6
    assert not (out / "shard-deadbeef0000.npy").exists()
    assert len(ClipCache(out)) == len(manifest)
    again = build_cache(manifest, out, SAMPLING, workers=1)
    assert again.cached == 0 and again.already_done == len(manifest)


def test_cache_refuses_other_sampling(manifest, tmp_path):
    build_cache(Manifest(manifest.entries[:2], manifest.root), tmp_path / "c", SAMPLING, workers=1)
    with pytest.raises(DatasetError, match="different sampling"):
        build_cache(manifest, tmp_path / "c", ClipSampling(num_frames=4, size=24), workers=1)


def test_multi_clip_cache(manifest, tmp_path):
    sampling = ClipSampling(strategy="multi", num_clips=2, num_frames=4, stride=2, size=16, threads=False)
    build_cache(Manifest(manifest.entries[:3], manifest.root), tmp_path / "m", sampling, workers=1)
    cache = ClipCache(tmp_path / "m")
    assert cache[manifest.entries[0].clip_id].shape == (2, 4, 3, 16, 16)


def test_dataset_reads_cache_and_decodes_the_rest(manifest, tmp_path):
    build_cache(Manifest(manifest.entries[:4], manifest.root), tmp_path / "cache", SAMPLING, workers=1)
    dataset = ClipDataset(manifest, SAMPLING, cache=tmp_path / "cache")
    clip, label, clip_id = dataset[0]
    assert clip.shape == (8, 3, 24, 24) and clip.dtype == torch.uint8
    assert label == manifest.label_index(manifest.entries[0].label) and clip_id == manifest.entries[0].clip_id
    uncached, _, _ = dataset[len(manifest) - 1]
    assert torch.equal(uncached, read_clip(manifest.resolve(manifest.entries[-1]), SAMPLING))


def test_dataset_skips_bad_files_with_report(manifest_with_bad_file, tmp_path):
    report = tmp_path / "skipped.csv"
    dataset = ClipDataset(manifest_with_bad_file, SAMPLING, skip_report=report)
    loader = DataLoader(dataset, batch_size=4, collate_fn=collate_clips, num_workers=0)
    seen = []
    for clips, labels, ids in loader:
        assert clips.shape[0] == labels.shape[0] == len(ids)
        seen += ids
    assert "junk" not in seen and len(seen) == len(manifest_with_bad_file) - 1
    with open(report) as handle:
        rows = list(csv.DictReader(handle))
    assert rows[0]["clip_id"] == "junk"


def test_dataset_in_worker_processes(manifest, tmp_path):
    build_cache(manifest, tmp_path / "cache", SAMPLING, workers=1)
    dataset = ClipDataset(manifest, SAMPLING, cache=ClipCache(tmp_path / "cache"))
    loader = DataLoader(dataset, batch_size=5, collate_fn=collate_clips, num_workers=2)
    labels = torch.cat([batch[1] for batch in loader])
    assert sorted(labels.tolist()) == sorted(manifest.label_index(e.label) for e in manifest.entries)
    assert np.unique(labels.numpy()).size == len(manifest.label_names)


def test_cache_says_resuming_only_when_an_earlier_run_left_clips_to_finish(manifest, tmp_path, caplog):
    out = tmp_path / "cache"
    small = Manifest(manifest.entries[:4], manifest.root)
    with caplog.at_level(logging.INFO, logger="tinyact.data.cache"):
        build_cache(small, out, SAMPLING, workers=1)
        build_cache(small, out, SAMPLING, workers=1)  # e.g. the training stage after the experiment built it
    assert "cache: resuming" not in caplog.text
    assert "cache: decoding 4 clip(s)" in caplog.text  # a fresh build says what it is doing (no bar without a TTY)
    with caplog.at_level(logging.INFO, logger="tinyact.data.cache"):
        build_cache(Manifest(manifest.entries[:6], manifest.root), out, SAMPLING, workers=1)
    assert "resuming, 4 clips already done, 2 to go" in caplog.text
