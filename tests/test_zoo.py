"""The model zoo: the shipped encoder loads offline with its hash verified, a corrupted file is refused, every
place a user needs an encoder defaults to it, and a pretraining run packages into an entry that loads back."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from typer.testing import CliRunner

import tinyact.zoo as zoo
from tinyact.cli import app
from tinyact.errors import ConfigError, TinyActError
from tinyact.models.autoencoder3d import VideoAutoEncoder3D
from tinyact.models.checkpoint import load_model, save_model, state_dict_hash

runner = CliRunner()


def test_the_default_entry_loads_offline_with_its_hash_verified():
    model, entry = zoo.load_encoder()
    assert entry.name == zoo.DEFAULT_ENCODER and isinstance(model, VideoAutoEncoder3D) and not model.training
    assert state_dict_hash(model.state_dict()) == entry.encoder_hash
    assert entry.weights.stat().st_size <= 12e6  # the budget for a shipped model
    assert len(entry.label_names) >= 24 and entry.frames == 16 and entry.size == 64
    clips = torch.rand(2, entry.frames, 3, entry.size, entry.size)
    z = model.encode(clips)
    assert z.shape == (2, 1024) and torch.isfinite(z).all()
    # Loading twice gives the same weights (the unused decoder is seeded too).
    again, _ = zoo.load_encoder()
    assert state_dict_hash(again.state_dict()) == entry.encoder_hash


@pytest.fixture
def copied_zoo(tmp_path, monkeypatch):
    entries = tmp_path / "entries"
    shutil.copytree(zoo.ENTRIES_DIR / zoo.DEFAULT_ENCODER, entries / zoo.DEFAULT_ENCODER)
    monkeypatch.setattr(zoo, "ENTRIES_DIR", entries)
    return entries / zoo.DEFAULT_ENCODER


def test_a_corrupted_weights_file_is_refused_with_one_clear_line(copied_zoo):
    weights = copied_zoo / zoo.WEIGHTS_FILE
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(TinyActError, match="corrupted .*SHA-256.*tinyact zoo build"):
        zoo.load_encoder(zoo.DEFAULT_ENCODER)
    weights.unlink()
    with pytest.raises(TinyActError, match="missing"):
        zoo.load_encoder(zoo.DEFAULT_ENCODER)


def test_unknown_names_and_specs_are_clear_errors(tmp_path):
    with pytest.raises(ConfigError, match="no zoo encoder called 'nope'.*everyday-64"):
        zoo.load_encoder("nope")
    with pytest.raises(ConfigError, match="neither zoo:NAME, scratch"):
        zoo.resolve_encoder(tmp_path / "missing.pt")
    assert zoo.resolve_encoder("scratch").is_scratch


def test_every_encoder_spec_resolves(tmp_path):
    default = zoo.resolve_encoder(None)
    assert default.spec == f"zoo:{zoo.DEFAULT_ENCODER}" and default.entry is not None
    path = tmp_path / "m.pt"
    small = VideoAutoEncoder3D(num_frames=4, input_size=16, channels=(4, 8, 8, 8), latent_dim=16)
    weights_hash = save_model(path, small)
    assert zoo.resolve_encoder(path).encoder_hash == weights_hash
    model, info = zoo.load_model_spec(f"zoo:{zoo.DEFAULT_ENCODER}")
    assert info["hash"] == default.encoder_hash and info["config"]["input_size"] == [64, 64]
    # materialize: a model file once, whose own hash is the entry's (the edge's exports go next to it).
    file = zoo.materialize(f"zoo:{zoo.DEFAULT_ENCODER}", tmp_path / "zoo")
    assert file.is_file() and load_model(file)[1]["hash"] == default.encoder_hash
    assert zoo.materialize(path, tmp_path / "zoo") == path


def test_defaults_use_the_zoo_encoder():
    from tinyact.classifiers.video_encoder import VideoEncoder
    from tinyact.demo import DemoConfig
    from tinyact.edge.config import EncoderConfig
    from tinyact.experiments.table1 import Table1Config

    spec = f"zoo:{zoo.DEFAULT_ENCODER}"
    assert Table1Config(data=Path("d"), out=Path("o")).encoder == spec
    assert str(EncoderConfig().checkpoint) == spec
    assert VideoEncoder().checkpoint == spec
    assert DemoConfig().encoder == spec
    help_text = runner.invoke(app, ["extract", "--help"], terminal_width=200).output
    assert spec in help_text


def test_video_encoder_and_edge_encoder_load_it(make_video, tmp_path, monkeypatch):
    from tinyact.classifiers.video_encoder import VideoEncoder
    from tinyact.edge.config import EncoderConfig
    from tinyact.edge.encoder import load_encoder

    _, entry = zoo.load_encoder()
    video = make_video("a.mp4", n_frames=20)
    encoder = VideoEncoder().fit([video])
    assert encoder.encoder_hash_ == entry.encoder_hash
    assert encoder.transform([video]).shape == (1, 1024)
    monkeypatch.setenv("TINYACT_HOME", str(tmp_path / "home"))
    edge = load_encoder(EncoderConfig())
    assert edge.encoder_hash == entry.encoder_hash and edge.input_size == (64, 64)
    assert (tmp_path / "home" / "zoo").is_dir()


def test_package_entry_round_trip(tmp_path, monkeypatch):
    from tinyact.training.zoo_build import package_entry

    small = VideoAutoEncoder3D(num_frames=4, input_size=16, channels=(4, 8, 8, 8), latent_dim=16)
    model_file = tmp_path / "model.pt"
    save_model(model_file, small, extra={"label_names": ["a", "b"]})
    probes = [{"name": "real", "data": "folder"}]  # one list under two keys, as a recipe's YAML alias gives
    recipe = {"stages": [{"pretrain": {"probes": probes}}, {"pretrain": {"probes": probes}}]}
    folder = package_entry("tiny", model_file, tmp_path / "entries" / "tiny", recipe,
                           {"probe": 0.5}, {"device": "cpu"}, "a test entry")
    monkeypatch.setattr(zoo, "ENTRIES_DIR", tmp_path / "entries")
    loaded, entry = zoo.load_encoder("tiny")
    assert entry.label_names == ["a", "b"] and entry.metrics == {"probe": 0.5}
    x = torch.rand(2, 4, 3, 16, 16)
    # float16 storage: the latents agree with the float32 original to half precision.
    assert np.allclose(loaded.encode(x).detach().numpy(), small.eval().encode(x).detach().numpy(), atol=2e-2)
    info = yaml.safe_load((folder / "entry.yaml").read_text())
    assert info["weights"]["dtype"] == "float16" and info["encoder_hash"] == entry.encoder_hash
    assert "&id" not in (folder / "entry.yaml").read_text() and info["recipe"] == recipe  # written out, no alias


def test_zoo_cli_list_and_info():
    listed = runner.invoke(app, ["zoo", "list"], terminal_width=200)
    assert listed.exit_code == 0 and zoo.DEFAULT_ENCODER in listed.output
    info = runner.invoke(app, ["zoo", "info", zoo.DEFAULT_ENCODER], terminal_width=200)
    assert info.exit_code == 0 and "weights verified" in info.output and "recipe" in info.output
    missing = runner.invoke(app, ["zoo", "info", "nope"])
    assert missing.exit_code == 2 and "no zoo encoder" in missing.output


def test_machine_description_records_what_auto_chose():
    from tinyact.training.zoo_build import machine_description

    assert machine_description("auto")["device"] == ("cuda" if torch.cuda.is_available() else "cpu")
