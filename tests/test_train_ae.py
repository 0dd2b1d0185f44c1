"""Unsupervised autoencoder training: a tiny run lowers the loss, writes its outputs, resumes exactly."""

from __future__ import annotations

import csv

import pytest
import torch
from typer.testing import CliRunner

from tinyact.cli import app
from tinyact.data.cache import build_cache
from tinyact.data.layouts import read_kinetics
from tinyact.data.manifest import Manifest
from tinyact.errors import ConfigError
from tinyact.models.checkpoint import load_model, state_dict_hash
from tinyact.training.ae import AETrainConfig, train_autoencoder

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def data(tiny_synth, tmp_path_factory):
    """(manifest CSV, a clip cache already built for 32 px × 8 frames) shared by the runs of this module."""
    root = tmp_path_factory.mktemp("ae")
    entries, _ = read_kinetics(tiny_synth)
    manifest_csv = Manifest(entries, tiny_synth).write(root / "manifest.csv")
    cfg = AETrainConfig(manifest=manifest_csv, out=root / "unused", size=32, frames=8)
    build_cache(Manifest.read(manifest_csv), root / "cache", cfg.sampling(), workers=1)
    return manifest_csv, root / "cache"


def _cfg(data, out, **kw) -> AETrainConfig:
    manifest_csv, cache = data
    base = dict(manifest=manifest_csv, out=out, cache_dir=cache, size=32, frames=8, batch_size=4, lr=3e-3,
                epochs=2, workers=1, device="cpu", grid_clips=2, model_overrides={"channels": [8, 16, 32, 64]})
    return AETrainConfig(**{**base, **kw})


def _rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_tiny_run_lowers_the_loss_and_writes_its_outputs(data, tmp_path):
    # Whole-batch steps (9 training clips) so the descent is steady enough to assert on in four epochs.
    result = train_autoencoder(_cfg(data, tmp_path / "run", epochs=4, batch_size=16, lr=2e-2))
    rows = _rows(result.metrics_csv)
    assert [int(float(r["epoch"])) for r in rows] == [1, 2, 3, 4]
    assert float(rows[-1]["train_mse"]) < 0.8 * float(rows[0]["train_mse"])
    # (val MSE of so short a run swings with BatchNorm's running statistics: only check it is there)
    assert 0 < float(rows[-1]["val_mse"]) < 1 and float(rows[-1]["val_psnr"]) > 0
    assert float(rows[0]["clips_per_s"]) > 0
    for name in ("config.yaml", "loss_curve.png", "recon/epoch_001.png", "recon/epoch_004.png", "checkpoint.pt"):
        assert (result.run_dir / name).is_file(), name
    model, info = load_model(result.checkpoint)
    assert info["hash"] == result.encoder_hash == state_dict_hash(model.state_dict())
    assert model.encode(torch.zeros(1, 8, 3, 32, 32)).shape == (1, 1024)
    assert AETrainConfig.from_yaml(result.run_dir / "config.yaml").epochs == 4


class _Killed(Exception):
    pass


@pytest.mark.parametrize("kind", ["ae3d", "ae2d"])
def test_killed_and_resumed_run_ends_with_the_same_weights(data, tmp_path, kind):
    straight = train_autoencoder(_cfg(data, tmp_path / "straight", kind=kind))

    def kill_after_first(epoch, row):
        if epoch == 1:
            raise _Killed

    with pytest.raises(_Killed):
        train_autoencoder(_cfg(data, tmp_path / "killed", kind=kind), on_epoch_end=kill_after_first)
    with pytest.raises(ConfigError, match="--resume"):
        train_autoencoder(_cfg(data, tmp_path / "killed", kind=kind))
    resumed = train_autoencoder(_cfg(data, tmp_path / "killed", kind=kind), resume=True)

    assert resumed.encoder_hash == straight.encoder_hash
    a, b = _rows(straight.metrics_csv), _rows(resumed.metrics_csv)
    assert [r["train_mse"] for r in a] == [r["train_mse"] for r in b]
    with pytest.raises(ConfigError, match="size"):
        train_autoencoder(_cfg(data, tmp_path / "killed", kind=kind, size=48), resume=True)


def test_bf16_autocast_on_cpu(data, tmp_path):
    result = train_autoencoder(_cfg(data, tmp_path / "bf16", epochs=1, precision="bf16"))
    assert float(_rows(result.metrics_csv)[0]["train_mse"]) < 0.5
    with pytest.raises(ConfigError, match="GPU"):
        train_autoencoder(_cfg(data, tmp_path / "amp", precision="amp"))


def test_train_ae_cli(data, tmp_path):
    manifest_csv, cache = data
    yaml_file = tmp_path / "ae.yaml"
    yaml_file.write_text(f"manifest: {manifest_csv}\nsize: 32\nframes: 8\nepochs: 1\nbatch_size: 8\nworkers: 1\n"
                         "model_overrides:\n  channels: [8, 16, 32, 64]\n")
    out = tmp_path / "cli"
    args = ["train", "ae", "--config", str(yaml_file), "--out", str(out), "--cache-dir", str(cache), "--device", "cpu"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert (out / "model.pt").is_file() and "val MSE" in result.output
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 2 and "--resume" in again.output
    resumed = CliRunner().invoke(app, [*args, "--resume", "--epochs", "2"])
    assert resumed.exit_code == 0, resumed.output
    assert len(_rows(out / "metrics.csv")) == 2
    yaml_file.write_text(f"manifest: {manifest_csv}\nepochz: 1\n")
    bad = CliRunner().invoke(app, ["train", "ae", "--config", str(yaml_file), "--out", str(tmp_path / "x")])
    assert bad.exit_code == 2 and "epochz" in bad.output


def test_motion_term_charges_a_static_reconstruction():
    from tinyact.training.ae import reconstruction_loss

    target = torch.zeros(1, 4, 3, 8, 8)
    target[:, ::2, :, :4] = 1.0  # flickering half frame: all the "motion"
    static = target.mean(dim=1, keepdim=True).expand_as(target)  # right on average, no motion
    plain = reconstruction_loss(static, target)
    assert plain == torch.nn.functional.mse_loss(static, target)
    assert reconstruction_loss(static, target, motion_weight=1.0) > plain + 0.2
    assert reconstruction_loss(target, target, motion_weight=1.0) == 0


def test_pooled_loss_ignores_a_shifted_edge_but_not_a_moving_blob():
    from tinyact.training.ae import reconstruction_loss

    grey = torch.zeros(1, 2, 3, 8, 8)
    edge = grey.clone()
    edge[..., :, 2], edge[..., :, 3] = 0.5, -0.5  # a residual +/- pair: an edge that shake moved by one pixel
    blob = grey.clone()
    blob[..., 0:4, 4:8] = 0.5  # a figure: one sign over its whole area
    assert reconstruction_loss(grey, edge) > 0.05
    assert reconstruction_loss(grey, edge, pool=4) == 0
    assert torch.isclose(reconstruction_loss(grey, blob, pool=4), reconstruction_loss(grey, blob))
