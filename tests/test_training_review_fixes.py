"""The KD and teacher trainers: a gradient scaler for ``amp`` (checkpointed), the
model's own input normalisation, and ``load_teacher(spec, device=…)`` reaching registered schemes.

Real generated videos (the synthetic set, 32 px, 8 frames) through the real cache and loaders; tiny widths.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tinyact.data.cache import build_cache
from tinyact.data.layouts import read_kinetics
from tinyact.data.manifest import Manifest
from tinyact.data.video import ClipSampling

TINY_AE = {"channels": [8, 16, 16, 32], "latent_dim": 32, "seed_channels": 4}


@pytest.fixture(scope="module")
def tiny_set(tiny_synth: Path, tmp_path_factory) -> tuple[Path, Path]:
    """``(manifest, cache)`` of the session's tiny synthetic set at 8 frames × 32 px."""
    root = tmp_path_factory.mktemp("reviewset")
    entries, _ = read_kinetics(tiny_synth)
    manifest = root / "manifest.csv"
    Manifest(entries, tiny_synth.resolve()).write(manifest)
    build_cache(Manifest.read(manifest), root / "cache", ClipSampling(num_frames=8, size=32), workers=1)
    return manifest, root / "cache"


def kd_config(tiny_set, out: Path, **fields):
    from tinyact.training.kd import KDConfig

    manifest, cache = tiny_set
    base = dict(manifest=manifest, out=out, cache_dir=cache, size=32, frames=8, ae_overrides=TINY_AE, head_dim=16,
                head_depth=1, head_dropout=0.0, epochs=1, warmup_epochs=0, batch_size=4, optimizer="adamw", lr=1e-3,
                lr_min=1e-3, device="cpu")
    base.update(fields)
    return KDConfig(**base)


def teacher_config(tiny_set, out: Path, **fields):
    from tinyact.training.teacher import TeacherTrainConfig

    manifest, cache = tiny_set
    base = dict(manifest=manifest, out=out, cache_dir=cache, size=32, frames=8, widths=(8, 8, 16, 16),
                blocks=(1, 1, 1, 1), epochs=1, batch_size=4, device="cpu")
    base.update(fields)
    return TeacherTrainConfig(**base)


# ------------------------------------------------------------------------------------------------ grad scaler
def test_make_scaler_is_enabled_for_amp_only(monkeypatch):
    from tinyact.training.runtime import make_scaler

    for precision in ("fp32", "bf16"):
        scaler = make_scaler(precision, torch.device("cpu"))
        assert not scaler.is_enabled() and scaler.state_dict() == {}
    with pytest.raises(ValueError, match="needs a GPU"):
        make_scaler("amp", "cpu")
    # amp on a GPU: an enabled scaler whose state (the loss scale) goes into checkpoints. A GradScaler only asks
    # torch whether CUDA exists when it is made, so this runs on a machine without one.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    scaler = make_scaler("amp", torch.device("cuda"))
    assert scaler.is_enabled()
    assert scaler.state_dict()["scale"] == 2.0**16
    assert not make_scaler("fp32", torch.device("cuda")).is_enabled()


def test_backward_step_with_a_disabled_scaler_is_a_plain_step():
    from tinyact.training.runtime import backward_step, make_scaler, restore_scaler

    torch.manual_seed(0)
    a = torch.nn.Linear(4, 3)
    b = torch.nn.Linear(4, 3)
    b.load_state_dict(a.state_dict())
    opt_a = torch.optim.SGD(a.parameters(), lr=0.1, momentum=0.9)
    opt_b = torch.optim.SGD(b.parameters(), lr=0.1, momentum=0.9)
    x, y = torch.randn(8, 4), torch.randint(0, 3, (8,))
    scaler = make_scaler("fp32", "cpu")
    restore_scaler(scaler, {})  # an fp32 checkpoint's (empty) scaler state
    restore_scaler(scaler, None)  # a checkpoint from before the scaler
    for _ in range(3):
        for p in b.parameters():  # stale gradients: backward_step must clear them first
            p.grad = torch.full_like(p, 100.0)
        opt_a.zero_grad()
        torch.nn.functional.cross_entropy(a(x), y).backward()
        opt_a.step()
        backward_step(torch.nn.functional.cross_entropy(b(x), y), opt_b, scaler)
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)


class RecordingScaler:
    """A disabled GradScaler that records what a training loop does with it (amp needs a GPU; this does not)."""

    def __init__(self, log: dict) -> None:
        self.inner = torch.amp.GradScaler("cpu", enabled=False)
        self.log = log

    def scale(self, loss):
        self.log["scale"] += 1
        return self.inner.scale(loss)

    def step(self, optimizer):
        self.log["step"] += 1
        return self.inner.step(optimizer)

    def update(self):
        self.log["update"] += 1
        self.inner.update()

    def state_dict(self):
        return {"scale": 1234.0, "updates": self.log["update"]}

    def load_state_dict(self, state):
        self.log["loaded"].append(dict(state))


def _record_scalers(monkeypatch, module: str) -> list[dict]:
    logs: list[dict] = []

    def factory(precision, device):
        assert precision == "fp32" and torch.device(device).type == "cpu"
        logs.append({"scale": 0, "step": 0, "update": 0, "loaded": []})
        return RecordingScaler(logs[-1])

    monkeypatch.setattr(f"{module}.make_scaler", factory)
    return logs


def test_kd_loop_scales_steps_updates_and_checkpoints_its_scaler(tiny_set, tmp_path, monkeypatch):
    from tinyact.training.kd import train_kd
    from tinyact.training.runtime import load_checkpoint

    logs = _record_scalers(monkeypatch, "tinyact.training.kd")
    train_kd(kd_config(tiny_set, tmp_path / "kd", epochs=2, max_steps=2))
    first = logs[0]
    assert first["scale"] == first["step"] == first["update"] == 2 and first["loaded"] == []
    saved = load_checkpoint(tmp_path / "kd" / "checkpoint.pt")["scaler"]
    assert saved == {"scale": 1234.0, "updates": 2}
    train_kd(kd_config(tiny_set, tmp_path / "kd", epochs=2), resume=True)
    assert logs[1]["loaded"] == [saved]  # exact resume: the loss scale carries on
    assert logs[1]["step"] > 0


def test_teacher_loop_scales_steps_updates_and_checkpoints_its_scaler(tiny_set, tmp_path, monkeypatch):
    from tinyact.training.runtime import load_checkpoint
    from tinyact.training.teacher import train_teacher

    logs = _record_scalers(monkeypatch, "tinyact.training.teacher")
    train_teacher(teacher_config(tiny_set, tmp_path / "teacher"))
    first = logs[0]
    assert first["scale"] == first["step"] == first["update"] > 0 and first["loaded"] == []
    saved = load_checkpoint(tmp_path / "teacher" / "checkpoint.pt")["scaler"]
    assert saved == {"scale": 1234.0, "updates": first["update"]}
    train_teacher(teacher_config(tiny_set, tmp_path / "teacher", epochs=2), resume=True)
    assert logs[1]["loaded"] == [saved]


def test_fp32_checkpoints_hold_an_empty_scaler_state_and_resume(tiny_set, tmp_path):
    from tinyact.training.kd import train_kd
    from tinyact.training.runtime import load_checkpoint

    train_kd(kd_config(tiny_set, tmp_path / "kd", epochs=2, max_steps=1))
    assert load_checkpoint(tmp_path / "kd" / "checkpoint.pt")["scaler"] == {}
    train_kd(kd_config(tiny_set, tmp_path / "kd", epochs=2), resume=True)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="amp (float16 autocast) needs a GPU")
def test_amp_kd_and_teacher_runs_on_a_gpu_checkpoint_the_loss_scale(tiny_set, tmp_path):
    from tinyact.training.kd import train_kd
    from tinyact.training.runtime import load_checkpoint
    from tinyact.training.teacher import train_teacher

    train_kd(kd_config(tiny_set, tmp_path / "kd", epochs=2, max_steps=2, precision="amp", device="cuda"))
    state = load_checkpoint(tmp_path / "kd" / "checkpoint.pt")["scaler"]
    assert state["scale"] > 0 and "_growth_tracker" in state
    result = train_kd(kd_config(tiny_set, tmp_path / "kd", epochs=2, precision="amp", device="cuda"), resume=True)
    assert result.val_top1 >= 0
    train_teacher(teacher_config(tiny_set, tmp_path / "teacher", precision="amp", device="cuda"))
    assert load_checkpoint(tmp_path / "teacher" / "checkpoint.pt")["scaler"]["scale"] > 0


# ------------------------------------------------------------------------------------------------ normalisation
def _capture(monkeypatch, cls, method: str) -> list[torch.Tensor]:
    seen: list[torch.Tensor] = []
    original = getattr(cls, method)

    def wrapper(self, x, *args, **kwargs):
        seen.append(x.detach().float().cpu())
        return original(self, x, *args, **kwargs)

    monkeypatch.setattr(cls, method, wrapper)
    return seen


@pytest.mark.parametrize("stats", ["none", "imagenet"])
def test_kd_feeds_the_student_its_own_normalisation(tiny_set, tmp_path, monkeypatch, stats):
    from tinyact.models.autoencoder3d import VideoAutoEncoder3D
    from tinyact.training.kd import train_kd

    seen = _capture(monkeypatch, VideoAutoEncoder3D, "encode")
    train_kd(kd_config(tiny_set, tmp_path / "kd", ae_overrides={**TINY_AE, "normalization": stats}, max_steps=1))
    assert len(seen) >= 2  # the training step and the evaluation on val
    low, high = min(float(x.min()) for x in seen), max(float(x.max()) for x in seen)
    if stats == "none":
        assert low >= 0.0 and high <= 1.0  # x / 255, as extraction and the edge feed this encoder
    else:
        assert low < -0.5  # ImageNet statistics: dark pixels go well below zero


def test_teacher_training_uses_the_teachers_own_normalisation(tiny_set, tmp_path, monkeypatch):
    from tinyact.models.teacher3d import Teacher3D
    from tinyact.training import teacher as teacher_module

    build = teacher_module.build_teacher

    def unnormalised(cfg, label_names):
        model = build(cfg, label_names)
        return Teacher3D(model.config, normalization="none")

    monkeypatch.setattr(teacher_module, "build_teacher", unnormalised)
    seen = _capture(monkeypatch, Teacher3D, "forward")
    result = teacher_module.train_teacher(teacher_config(tiny_set, tmp_path / "teacher"))
    assert len(seen) >= 2  # training steps and the evaluation on val
    assert all(float(x.min()) >= 0.0 and float(x.max()) <= 1.0 for x in seen)
    from tinyact.models.checkpoint import load_model

    model, _ = load_model(result.checkpoint)
    assert model.config.normalization == "none"  # and predict_uint8 (its use as a teacher) normalises the same way


# ------------------------------------------------------------------------------------------------ load_teacher
def test_load_teacher_passes_device_to_registered_schemes(monkeypatch):
    from tinyact.teachers import load_teacher, loaders, register_teacher_scheme

    given: list[tuple[str, str | None]] = []

    def factory(rest: str, device: str | None = None):
        given.append((rest, device))
        return object()

    class Movable:
        def __init__(self) -> None:
            self.device = "start"

        def to(self, device):
            self.device = device
            return self

    monkeypatch.setattr(loaders, "_SCHEMES", dict(loaders._SCHEMES))  # registrations end with the test
    register_teacher_scheme("devrec", factory)
    load_teacher("devrec:some/where?x=1", device="cuda:3")
    load_teacher("devrec:else")
    assert given == [("some/where?x=1", "cuda:3"), ("else", None)]
    # a loader that takes no device: its teacher is moved there
    register_teacher_scheme("nodev", lambda rest: Movable())
    assert load_teacher("nodev:x", device="cuda:1").device == "cuda:1"
    assert load_teacher("nodev:x").device == "start"


def test_inproject_scheme_takes_the_device_argument_over_the_specs(monkeypatch):
    from tinyact.teachers import inproject, load_teacher

    given: list[tuple[str, str | None]] = []
    monkeypatch.setattr(inproject, "load_inproject_teacher", lambda path, device=None: given.append((path, device)))
    load_teacher("inproject:/runs/t?device=cuda:1", device="cpu")
    load_teacher("inproject:/runs/t?device=cuda:1")
    load_teacher("inproject:/runs/t", device="auto")
    load_teacher("inproject:/runs/t")
    assert given == [("/runs/t", "cpu"), ("/runs/t", "cuda:1"), ("/runs/t", None), ("/runs/t", None)]
