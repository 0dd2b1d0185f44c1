"""The in-project teacher, the KD trainer (set-ups, cached teacher logits, resume, DDP) and the standalone MLP.

Real generated videos (the synthetic set, 32 px, 8 frames) through the real cache and loaders; tiny widths.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tinyact.data.cache import build_cache
from tinyact.data.layouts import read_kinetics
from tinyact.data.manifest import Manifest
from tinyact.data.video import ClipSampling
from tinyact.models.checkpoint import load_model

SRC = Path(__file__).resolve().parents[1] / "src"
TINY_AE = {"channels": [8, 16, 16, 32], "latent_dim": 32, "seed_channels": 4}


@pytest.fixture(scope="module")
def tiny_set(tiny_synth: Path, tmp_path_factory) -> tuple[Path, Path]:
    """``(manifest, cache)`` of the session's tiny synthetic set at 8 frames × 32 px."""
    root = tmp_path_factory.mktemp("kdset")
    entries, _ = read_kinetics(tiny_synth)
    manifest = root / "manifest.csv"
    Manifest(entries, tiny_synth.resolve()).write(manifest)
    build_cache(Manifest.read(manifest), root / "cache", ClipSampling(num_frames=8, size=32), workers=1)
    return manifest, root / "cache"


@pytest.fixture(scope="module")
def teacher_run(tiny_set, tmp_path_factory):
    from tinyact.training.teacher import TeacherTrainConfig, train_teacher

    manifest, cache = tiny_set
    cfg = TeacherTrainConfig(manifest=manifest, out=tmp_path_factory.mktemp("teacher"), cache_dir=cache, size=32, frames=8,
                             widths=(8, 8, 16, 16), blocks=(1, 1, 1, 1), epochs=2, batch_size=4)
    return train_teacher(cfg)


@pytest.fixture(scope="module")
def teacher_logits(teacher_run, tiny_set, tmp_path_factory) -> Path:
    from tinyact.teachers import cache_teacher, load_teacher

    manifest, cache = tiny_set
    out = tmp_path_factory.mktemp("logits") / "logits.npz"
    cache_teacher(load_teacher(f"inproject:{teacher_run.checkpoint}"), Manifest.read(manifest),
                  ClipSampling(num_frames=8, size=32), out, cache_dir=cache, batch_size=4)
    return out


def kd_config(tiny_set, out: Path, **fields):
    from tinyact.training.kd import KDConfig

    manifest, cache = tiny_set
    base = dict(manifest=manifest, out=out, cache_dir=cache, size=32, frames=8, ae_overrides=TINY_AE, head_dim=16,
                head_depth=1, head_dropout=0.0, epochs=2, warmup_epochs=1, batch_size=4, optimizer="adamw", lr=1e-3,
                lr_min=1e-3, device="cpu")
    base.update(fields)
    return KDConfig(**base)


# ------------------------------------------------------------------------------------------------ teacher
def test_teacher3d_shapes_and_presets():
    from tinyact.models.teacher3d import Teacher3D

    model = Teacher3D.from_preset("small", num_classes=5, widths=(8, 8, 16, 16), num_frames=8, input_size=32).eval()
    logits, embedding = model(torch.randn(2, 8, 3, 32, 32), return_embedding=True)
    assert logits.shape == (2, 5) and embedding.shape == (2, 16)
    motion = Teacher3D.from_preset("small", num_classes=5, widths=(8, 8, 16, 16), motion=True).eval()
    assert motion.stem[0].in_channels == 6
    still = torch.randn(1, 1, 3, 32, 32).expand(1, 8, 3, 32, 32)  # a static clip: its differences are zero
    with torch.no_grad():
        base = motion(still)
        motion.stem[0].weight[:, 3:] += 1.0  # weights on the difference channels do not matter for it
        assert torch.allclose(motion(still), base, atol=1e-5)
    full = Teacher3D.from_preset("r2plus1d_18", num_classes=400)
    params = sum(p.numel() for p in full.parameters())
    assert 30e6 < params < 34e6  # R(2+1)D-18 has 31.5 M weights with a 400-way head
    with pytest.raises(ValueError, match="unknown teacher preset"):
        Teacher3D.from_preset("huge")


def test_train_teacher_writes_run_and_loads_as_inproject_teacher(teacher_run, tiny_set):
    from tinyact.teachers import load_teacher

    run = teacher_run.run_dir
    for name in ("config.yaml", "checkpoint.pt", "model.pt", "metrics.csv", "curves.png"):
        assert (run / name).is_file(), name
    rows = (run / "metrics.csv").read_text().splitlines()
    assert rows[0].startswith("epoch,train_loss,train_top1,val_loss,val_top1") and len(rows) == 3
    teacher = load_teacher(f"inproject:{run}?device=cpu")  # the run folder works as well as model.pt
    assert teacher.label_names == Manifest.read(tiny_set[0]).label_names
    clips = torch.randint(0, 255, (2, 16, 3, 40, 40), dtype=torch.uint8)  # resampled to 8 × 32 × 32 inside
    out = teacher(clips)
    assert out.logits.shape == (2, 3) and out.embedding.shape == (2, teacher.embedding_dim)


# ------------------------------------------------------------------------------------------------ KD trainer
def test_kd_with_cached_logits_writes_run_and_lowers_the_loss(tiny_set, teacher_logits, tmp_path):
    from tinyact.training.kd import train_kd

    cfg = kd_config(tiny_set, tmp_path / "kd", teacher_logits=teacher_logits, epochs=4, feature_kd=0.5)
    result = train_kd(cfg)
    for name in ("config.yaml", "checkpoint.pt", "model.pt", "head.pt", "metrics.csv", "curves.png", "result.json"):
        assert (result.run_dir / name).is_file(), name
    import csv

    with open(result.metrics_csv) as handle:
        rows = list(csv.DictReader(handle))
    for key in ("train_ce", "train_kl", "train_mse", "train_feature", "train_total", "train_top1",
                "train_teacher_top1", "val_top1", "val_teacher_top1", "val_psnr"):
        assert key in rows[0], key
    assert float(rows[0]["beta"]) == 0.0 and float(rows[1]["beta"]) == 0.5  # warm-up over 1 epoch
    assert float(rows[1]["train_kl"]) > 0 and float(rows[1]["train_feature"]) > 0
    assert float(rows[-1]["train_ce"]) < float(rows[0]["train_ce"])
    assert float(rows[-1]["train_total"]) < float(rows[1]["train_total"])  # same β from epoch 1 on
    encoder, info = load_model(result.checkpoint)  # a plain autoencoder file: extraction and the edge take it
    assert info["kind"] == "VideoAutoEncoder3D" and info["hash"] == result.encoder_hash
    head, _ = load_model(result.head)
    assert head(encoder.encode(torch.randn(2, 8, 3, 32, 32))).shape == (2, 3)


def test_frozen_setup_leaves_the_encoder_unchanged(tiny_set, teacher_logits, tmp_path):
    from tinyact.models.autoencoder3d import VideoAutoEncoder3D
    from tinyact.models.checkpoint import save_model
    from tinyact.training.kd import train_kd

    ae = VideoAutoEncoder3D.from_preset("fast", num_frames=8, input_size=32, channels=(8, 16, 16, 32), latent_dim=32, seed_channels=4)
    pretrained = tmp_path / "ae.pt"
    save_model(pretrained, ae)
    before = {k: v.clone() for k, v in ae.state_dict().items()}
    result = train_kd(kd_config(tiny_set, tmp_path / "frozen", setup="frozen", pretrained=pretrained,
                                teacher_logits=teacher_logits, epochs=1))
    after, _ = load_model(result.checkpoint)
    state = after.state_dict()
    encoder_keys = [k for k in state if k.split(".")[0] in ("encoder", "to_latent")]
    decoder_keys = [k for k in state if k.split(".")[0] in ("decoder", "from_latent")]
    assert encoder_keys and all(torch.equal(state[k], before[k]) for k in encoder_keys)  # weights and BN statistics
    assert any(not torch.equal(state[k], before[k]) for k in decoder_keys)  # the decoder did train


def test_kd_resume_gives_the_same_weights(tiny_set, teacher_logits, tmp_path):
    from tinyact.training.kd import train_kd

    full = train_kd(kd_config(tiny_set, tmp_path / "full", teacher_logits=teacher_logits, epochs=2, head_dropout=0.1))
    train_kd(kd_config(tiny_set, tmp_path / "cut", teacher_logits=teacher_logits, epochs=2, head_dropout=0.1, max_steps=2))
    resumed = train_kd(kd_config(tiny_set, tmp_path / "cut", teacher_logits=teacher_logits, epochs=2, head_dropout=0.1),
                       resume=True)
    assert resumed.encoder_hash == full.encoder_hash


def test_missing_teacher_logits_are_an_error_naming_the_clips(tiny_set, teacher_logits, tmp_path):
    from tinyact.teachers import CachedLogits
    from tinyact.training.kd import KDError, train_kd

    cached = CachedLogits.load(teacher_logits)
    dropped = str(cached.clip_ids[0])
    partial = CachedLogits(cached.clip_ids[1:], cached.logits[1:], cached.label_names, cached.embeddings[1:])
    partial.save(tmp_path / "partial.npz")
    with pytest.raises(KDError, match=dropped):
        train_kd(kd_config(tiny_set, tmp_path / "kd", teacher_logits=tmp_path / "partial.npz"))
    other = CachedLogits(cached.clip_ids, cached.logits, [cached.label_names[0], "y", "z"])
    other.save(tmp_path / "other.npz")
    with pytest.raises(KDError, match="no class for 2 dataset label"):
        train_kd(kd_config(tiny_set, tmp_path / "kd2", teacher_logits=tmp_path / "other.npz"))


def test_kd_cli_trains_ce_only_baseline(tiny_set, tmp_path):
    from typer.testing import CliRunner

    from tinyact.cli import app

    cfg = kd_config(tiny_set, tmp_path / "cli", epochs=1)
    cfg.save(tmp_path, "kd.yaml")
    result = CliRunner().invoke(app, ["train", "kd", "--config", str(tmp_path / "kd.yaml")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "cli" / "model.pt").is_file()
    bad = CliRunner().invoke(app, ["train", "kd", "--config", str(tmp_path / "kd.yaml"), "--setup", "frozen"])
    assert bad.exit_code == 2 and "needs `pretrained`" in bad.output


@pytest.mark.slow
def test_two_process_ddp_step_equals_one_process_step(tiny_set, teacher_logits, tmp_path):
    """One optimiser step under torchrun (2 CPU processes, gloo) = one step of one process on the same batch."""
    from tinyact.training.kd import train_kd

    fields = dict(teacher_logits=teacher_logits, epochs=1, max_steps=1, batch_size=4, optimizer="sgd", lr=0.5, lr_min=0.5,
                  momentum=0.0, warmup_epochs=0, feature_kd=0.5)
    single = train_kd(kd_config(tiny_set, tmp_path / "single", **fields))
    cfg = kd_config(tiny_set, tmp_path / "ddp", **fields)
    cfg.save(tmp_path, "ddp.yaml")
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1", "TINYACT_NO_PROGRESS": "1"}
    run = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29517", "-m", "tinyact",
         "train", "kd", "--config", str(tmp_path / "ddp.yaml")],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    one, _ = load_model(single.checkpoint)
    two, _ = load_model(tmp_path / "ddp" / "model.pt")
    start = kd_config(tiny_set, tmp_path / "x").model_copy()
    from tinyact.training.kd import build_student

    torch.manual_seed(start.seed)
    initial = build_student(start, 3, None).autoencoder.state_dict()
    moved = max(float((one.state_dict()[k] - initial[k]).abs().max()) for k in initial if initial[k].is_floating_point())
    assert moved > 1e-2  # the step changed the weights by far more than the tolerance below
    for key, value in one.state_dict().items():
        if key.endswith("num_batches_tracked"):
            continue
        np.testing.assert_allclose(two.state_dict()[key].numpy(), value.numpy(), atol=2e-5, rtol=1e-4, err_msg=key)


# ------------------------------------------------------------------------------------------------ standalone MLP
def _blobs(seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(90, 16)).astype(np.float32)
    y = np.repeat(np.array(["run", "sit", "wave"]), 30)
    x[y == "sit", :3] += 3
    x[y == "wave", 3:6] += 3
    return x, y


def test_mlp_estimator_is_a_seeded_sklearn_classifier():
    from sklearn.base import clone

    from tinyact.classifiers.mlp import MLPResNetEstimator

    x, y = _blobs()
    clf = MLPResNetEstimator(dim=16, depth=1, lr=1e-2, lr_min=1e-3, max_epochs=500, patience=5, batch_size=32)
    assert clf.get_params()["lr"] == 1e-2 and MLPResNetEstimator().get_params()["lr"] == 1e-5  # the paper's default
    clf.fit(x, y)
    assert clf.score(x, y) > 0.9 and set(clf.predict(x)) <= {"run", "sit", "wave"}
    proba = clf.predict_proba(x)
    assert proba.shape == (90, 3) and np.allclose(proba.sum(1), 1, atol=1e-5)
    assert clf.n_epochs_ < 500 and clf.best_epoch_ == clf.n_epochs_ - 1 - 5  # early stopping on the held-out part
    again = clone(clf).fit(x, y)
    np.testing.assert_allclose(again.predict_proba(x), proba, atol=1e-6)


def test_mlp_kind_fits_through_fit_classifier(tmp_path):
    from tinyact.classifiers.estimators import FACTORIES
    from tinyact.classifiers.search import fit_classifier
    from tinyact.latents import LatentsFile

    assert "mlp" in FACTORIES
    x, y = _blobs(1)
    splits = np.array((["train"] * 20 + ["val"] * 5 + ["test"] * 5) * 3)
    latents = LatentsFile(x, y, ["run", "sit", "wave"], [f"c{i}" for i in range(90)], splits, "abc")
    result = fit_classifier(latents, "mlp", tmp_path / "mlp", folds=3,
                            grid={"dim": 16, "depth": 1, "lr": 1e-2, "lr_min": 1e-3, "max_epochs": 40})
    assert result.metrics["top1"] > 0.8
    assert (tmp_path / "mlp" / "search.json").is_file()


# ------------------------------------------------------------------------------------------------ Table 2
@pytest.mark.slow
def test_table2_end_to_end_on_a_tiny_synthetic_set(tiny_synth, tmp_path):
    import json

    from tinyact.experiments.table2 import Table2Config, run_table2

    tiny_ae = {"channels": [8, 8, 16, 16], "latent_dim": 16, "seed_channels": 2}
    cfg = Table2Config(
        data=tiny_synth, out=tmp_path / "run", size=32, frames=8, batch_size=4, folds=2, epochs=1, workers=1,
        device="cpu", teacher_train={"epochs": 1, "widths": [8, 8, 8, 8]}, ae={"epochs": 1, "model_overrides": tiny_ae},
        kd={"ae_overrides": tiny_ae, "head_dim": 8, "head_depth": 1, "optimizer": "adamw", "lr": 1e-3, "warmup_epochs": 0},
        grids={"mlp": {"dim": 8, "depth": 1, "lr": 1e-2, "max_epochs": 20}, "svm": {"C": 1.0},
               "rf": {"n_estimators": 10}, "xgboost": {"n_estimators": 5, "max_depth": 2}, "dt": {"max_depth": 3}},
    )
    metrics = run_table2(cfg)
    on_disk = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert set(on_disk["setups"]) == {"scratch", "pretrained", "frozen", "feature_kd"}
    for name in ("scratch", "pretrained", "frozen", "feature_kd"):
        row = on_disk["setups"][name]
        assert set(row) >= {"kd_top1", "mlp", "svm", "rf", "xgboost", "dt"}
        assert all(0.0 <= row[k] <= 1.0 for k in ("kd_top1", "mlp", "svm", "rf", "xgboost", "dt"))
    assert 0.0 <= on_disk["teacher_top1"] <= 1.0
    assert set(on_disk["no_kd"]) == {"mlp", "svm", "rf", "xgboost", "dt"} and on_disk["ce_only"]["kd_top1"] is not None
    assert "kd_beats_ce_only" in on_disk["targets"] and "kd_latents_beat_ae_latents" in on_disk["targets"]
    table = (tmp_path / "run" / "table2.md").read_text()
    assert "Pretrained encoder, frozen" in table and "15.11" in table  # ours and the paper's side by side
    # The scratch student's latents came from its own encoder, not the AE's.
    hashes = {on_disk["setups"][n]["encoder_hash"] for n in on_disk["setups"]}
    assert len(hashes) == 4
    again = run_table2(cfg)  # everything is done: nothing is retrained, the same numbers come back
    assert again["setups"] == metrics["setups"]
    # A deployable bundle of the student and classifier chosen on val, whose encoder matches its classifier.
    from tinyact.classifiers.bundle import load_bundle

    bundle = load_bundle(tmp_path / "run" / "bundle")
    assert bundle.encoder_hash in hashes and (tmp_path / "run" / "bundle" / "MODEL_CARD.md").is_file()
