"""Latent extraction: file format, metadata columns, resume, skipped clips, the CLI."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from tinyact.cli import app
from tinyact.data.cache import build_cache
from tinyact.data.layouts import read_kinetics
from tinyact.data.manifest import Manifest, ManifestEntry
from tinyact.data.video import ClipSampling
from tinyact.latents import LatentsFile
from tinyact.models.checkpoint import save_model, state_dict_hash
from tinyact.models.factory import build_autoencoder
from tinyact.training import extract as extract_module
from tinyact.training.extract import extract_latents

pytestmark = pytest.mark.usefixtures("one_thread")

SAMPLING = ClipSampling(num_frames=8, size=32)


@pytest.fixture(scope="module")
def manifest(tiny_synth) -> Manifest:
    entries, _ = read_kinetics(tiny_synth)
    return Manifest(entries, tiny_synth)


@pytest.fixture(scope="module")
def encoder():
    torch.manual_seed(0)
    return build_autoencoder("ae3d", "fast", num_frames=8, input_size=32, channels=(8, 16, 32, 64)).eval()


def test_extract_writes_the_latents_contract(manifest, encoder, tmp_path):
    out = tmp_path / "latents.npz"
    result = extract_latents(encoder, manifest, SAMPLING, out, batch_size=4)
    back = LatentsFile.load(out)
    assert back.latents.shape == (len(manifest), 1024) and back.latents.dtype == np.float32
    assert np.isfinite(back.latents).all() and back.latents.std(axis=0).max() > 0
    assert back.clip_ids.tolist() == [e.clip_id for e in manifest.entries]
    assert back.labels.tolist() == [e.label for e in manifest.entries]
    assert back.splits.tolist() == [e.split for e in manifest.entries]
    assert back.label_names == manifest.label_names
    assert back.encoder_hash == state_dict_hash(encoder.state_dict()) == result.encoder_hash
    # Metadata columns of the manifest travel with the rows (the held-out-actor evaluation needs them).
    assert "actor" in manifest.extra_columns
    assert back.column("actor").tolist() == [e.extra["actor"] for e in manifest.entries]
    test = back.split("test")
    assert test.column("actor").tolist() == [e.extra["actor"] for e in manifest.entries if e.split == "test"]
    assert back.meta["sampling"]["num_frames"] == 8 and back.meta["skipped"] == {}
    # Rows are the encoder's output on the decoded clips.
    from tinyact.data.transforms import normalize
    from tinyact.data.video import read_clip

    clip = read_clip(manifest.resolve(manifest.entries[2]), SAMPLING)
    with torch.no_grad():
        z = encoder.encode(normalize(clip[None])).numpy()[0]
    np.testing.assert_allclose(back.latents[2], z, rtol=1e-4, atol=1e-4)


def test_extract_resumes_after_a_crash_and_reads_the_cache(manifest, encoder, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    build_cache(manifest, cache, SAMPLING, workers=1)
    out = tmp_path / "latents.npz"
    reference = extract_latents(encoder, manifest, SAMPLING, tmp_path / "ref.npz", batch_size=2, cache_dir=cache)

    calls = {"n": 0}
    real_encode = encoder.encode

    def crash_after_three(x):
        calls["n"] += 1
        if calls["n"] > 3:
            raise KeyboardInterrupt
        return real_encode(x)

    monkeypatch.setattr(encoder, "encode", crash_after_three)
    with pytest.raises(KeyboardInterrupt):
        extract_latents(encoder, manifest, SAMPLING, out, batch_size=2, cache_dir=cache, save_every=1)
    partial = extract_module._partial_path(out)
    assert partial.exists() and not out.exists()
    with np.load(partial) as data:
        assert len(data["clip_ids"]) == 6

    seen = []
    monkeypatch.setattr(encoder, "encode", lambda x: seen.append(len(x)) or real_encode(x))
    resumed = extract_latents(encoder, manifest, SAMPLING, out, batch_size=2, cache_dir=cache)
    assert sum(seen) == len(manifest) - 6  # only the clips the crash left
    assert not partial.exists()
    np.testing.assert_allclose(resumed.latents, reference.latents, rtol=1e-5, atol=1e-5)
    assert resumed.clip_ids.tolist() == reference.clip_ids.tolist()

    # A complete file made by the same encoder is returned as is; another encoder starts over.
    seen.clear()
    extract_latents(encoder, manifest, SAMPLING, out, batch_size=2, cache_dir=cache)
    assert seen == []
    other = build_autoencoder("ae3d", "fast", num_frames=8, input_size=32, channels=(8, 16, 32, 64)).eval()
    redone = extract_latents(other, manifest, SAMPLING, out, batch_size=8, cache_dir=cache)
    assert redone.encoder_hash == state_dict_hash(other.state_dict()) != resumed.encoder_hash


def test_undecodable_clips_are_listed_not_silently_dropped(manifest, encoder, tmp_path):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video")
    first = manifest.entries[0]
    broken = Manifest([*manifest.entries[:3], ManifestEntry(str(junk), first.label, "train", "junk", {"actor": "9"})], manifest.root)
    result = extract_latents(encoder, broken, SAMPLING, tmp_path / "l.npz")
    assert len(result) == 3 and "junk" not in result.clip_ids
    assert "junk" in result.meta["skipped"]
    assert len(result.column("actor")) == 3


def test_extract_cli_uses_the_model_file(manifest, encoder, tmp_path):
    model_file = tmp_path / "model.pt"
    weights = save_model(model_file, encoder)
    manifest_csv = manifest.write(tmp_path / "manifest.csv")
    out = tmp_path / "cli.npz"
    result = CliRunner().invoke(app, ["extract", "--checkpoint", str(model_file), "--manifest", str(manifest_csv),
                                      "--out", str(out), "--batch-size", "5"])
    assert result.exit_code == 0, result.output
    back = LatentsFile.load(out)
    assert back.encoder_hash == weights and len(back) == len(manifest)
    assert back.meta["sampling"]["size"] == 32 and back.meta["encoder"]["kind"] == "VideoAutoEncoder3D"

    missing = CliRunner().invoke(app, ["extract", "--checkpoint", str(tmp_path / "nope.pt"), "--manifest",
                                       str(manifest_csv), "--out", str(out)])
    assert missing.exit_code == 2 and "not found" in missing.output
