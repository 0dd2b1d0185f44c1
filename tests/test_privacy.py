"""Privacy audit: metrics on known inputs, probe chance levels, defences, a learnable attack, and the quick
benchmark end to end on a tiny synthetic set."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from tinyact.models.autoencoder3d import AutoEncoder3DConfig
from tinyact.privacy import (
    AttackConfig,
    Defence,
    conditional_baseline,
    mean_frame_baseline,
    nearest_neighbour_attack,
    probe_cv,
    psnr_per_item,
    quantize_per_vector,
    reconstruction_scores,
    ssim_per_item,
    train_attack,
    wire_roundtrip,
)
from tinyact.privacy.attack import reconstruct


@pytest.fixture(autouse=True)
def one_torch_thread():
    # Tiny tensors on a shared 2-core machine: a second OpenMP thread only spins (35× slower under load).
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_identical_clips_score_perfectly():
    x = torch.rand(3, 2, 3, 24, 24)
    assert torch.isinf(psnr_per_item(x, x)).all()
    assert torch.allclose(ssim_per_item(x, x), torch.ones(3, dtype=torch.float64))
    scores = reconstruction_scores(x, x)
    assert scores["psnr"] == math.inf and scores["ssim"] == pytest.approx(1.0)


def test_noise_lowers_psnr_and_ssim_monotonically():
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(4, 2, 3, 32, 32, generator=gen)
    weak = (x + 0.05 * torch.randn(x.shape, generator=gen)).clamp(0, 1)
    strong = (x + 0.3 * torch.randn(x.shape, generator=gen)).clamp(0, 1)
    assert (psnr_per_item(weak, x) > psnr_per_item(strong, x)).all()
    assert (ssim_per_item(weak, x) > ssim_per_item(strong, x)).all()
    assert (ssim_per_item(strong, x) < 0.9).all()
    # PSNR from its definition: 10 log10(1 / MSE).
    mse = float(((weak.double() - x.double()) ** 2)[0].mean())
    assert float(psnr_per_item(weak, x)[0]) == pytest.approx(10 * math.log10(1 / mse), rel=1e-9)


def test_ssim_of_constant_images_is_the_luminance_term():
    # Flat images have zero variance, so SSIM reduces to (2ab + C1) / (a² + b² + C1).
    a, b = torch.full((1, 3, 16, 16), 0.5), torch.full((1, 3, 16, 16), 0.7)
    c1 = 0.01**2
    assert float(ssim_per_item(a, b)[0]) == pytest.approx((2 * 0.5 * 0.7 + c1) / (0.5**2 + 0.7**2 + c1), rel=1e-5)


def test_ssim_refuses_bad_input():
    with pytest.raises(ValueError, match="smaller than"):
        ssim_per_item(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8))
    with pytest.raises(ValueError, match="shapes differ"):
        ssim_per_item(torch.rand(1, 3, 16, 16), torch.rand(2, 3, 16, 16))


def test_probe_is_at_chance_on_random_labels_and_high_on_informative_features():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 32)).astype(np.float32)
    y_random = rng.integers(0, 4, size=120)
    random_probe = probe_cv(x, y_random, "logreg", folds=4, target="noise")
    assert random_probe.uniform == 0.25 and random_probe.classes == 4
    assert random_probe.accuracy < 0.45  # chance is 0.25; far from the informative case below
    y = rng.integers(0, 4, size=120)
    x_informative = x.copy()
    x_informative[np.arange(120), y] += 4.0  # class k shifts feature k
    assert probe_cv(x_informative, y, "logreg", folds=4).accuracy > 0.9
    assert probe_cv(x_informative[:60], y[:60], "rf", folds=3).accuracy > 0.8


def test_probe_drops_classes_too_small_to_stratify():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(31, 4))
    y = np.array([0] * 15 + [1] * 15 + [2])  # class 2 has one clip: cannot be in every fold
    result = probe_cv(x, y, folds=3)
    assert result.dropped_classes == 1 and result.classes == 2 and result.samples == 30


def test_conditional_baseline():
    condition = np.repeat(np.arange(4), 10)
    assert conditional_baseline(condition, condition, folds=5) == 1.0
    rng = np.random.default_rng(2)
    unrelated = rng.integers(0, 4, size=40)
    assert conditional_baseline(rng.permutation(condition), unrelated, folds=5) < 0.6


def test_wire_roundtrip_and_quantisation():
    rng = np.random.default_rng(3)
    z = rng.normal(size=(5, 64)).astype(np.float32)
    assert np.allclose(wire_roundtrip(z, "float16"), z, atol=2e-3)
    int8 = wire_roundtrip(z, "int8")
    assert np.abs(int8 - z).max() <= np.abs(z).max() / 127 / 2 + 1e-6
    ternary = quantize_per_vector(z, 2)
    assert all(len(np.unique(row)) <= 3 for row in ternary)
    assert np.allclose(quantize_per_vector(z, 8), int8, atol=1e-6)  # 8 bits is the wire's int8
    noisy = Defence.parse("noise:0.5").apply(z, scale=2.0, seed=0)
    assert np.std(noisy - z) == pytest.approx(1.0, rel=0.1)
    assert np.array_equal(Defence.parse("none").apply(z, 1.0, 0), z)
    with pytest.raises(ValueError, match="noise:<sigma>"):
        Defence.parse("blur:3")


def test_attack_learns_an_invertible_code_and_beats_the_mean_frame():
    # Two kinds of clip (red / blue frames) with latents that say which: the attack must recover the colour.
    rng = np.random.default_rng(4)
    kinds = np.array([0, 1] * 6)
    clips = np.zeros((12, 4, 3, 16, 16), np.uint8)
    clips[kinds == 0, :, 0] = 220
    clips[kinds == 1, :, 2] = 220
    latents = (np.eye(2)[kinds] * 2 + rng.normal(0, 0.05, size=(12, 2)))
    latents = np.concatenate([latents, rng.normal(size=(12, 6))], axis=1).astype(np.float32)  # [12, 8]
    config = AutoEncoder3DConfig(num_frames=4, input_size=(16, 16), channels=(8, 8, 8, 8), latent_dim=8,
                                 seed_channels=4, stem_stride=(2, 4, 4))
    decoder = train_attack(latents[:8], clips[:8], config, AttackConfig(width=1.0, epochs=30, batch_size=4, lr=1e-2))
    target = torch.as_tensor(clips[8:]).float() / 255
    attack = reconstruction_scores(reconstruct(decoder, latents[8:]), target)
    baseline = reconstruction_scores(mean_frame_baseline(clips[:8], 4), target)
    assert attack["psnr"] > baseline["psnr"] + 3, (attack, baseline)
    nearest = nearest_neighbour_attack(latents[:8], clips[:8], latents[8:])
    assert torch.equal(nearest, target)  # the nearest training clip has the same colour


@pytest.mark.slow
def test_quick_benchmark_end_to_end(tmp_path):
    from benchmarks import privacy

    out, grid = tmp_path / "privacy.json", tmp_path / "grid.png"
    plot = tmp_path / "defences.png"
    result = privacy.main(["--quick", "--kd", "--defend", "KD", "--json", str(out), "--grid", str(grid), "--plot", str(plot)])
    saved = json.loads(out.read_text())
    assert saved["machine"]["cores"] and "loadavg_before" in saved
    assert grid.stat().st_size > 1000 and plot.stat().st_size > 1000
    methods = {(r["wire"], r["method"]) for r in result["attack"]}
    assert {("float32", "attack decoder"), ("float16", "attack decoder"), ("int8", "attack decoder"),
            ("float32", "AE's own decoder"), ("-", "mean frame"), ("float32", "nearest neighbour")} <= methods
    assert all(0 <= r["ssim"] <= 1 and math.isfinite(r["psnr"]) for r in result["attack"])
    targets = {(p["encoder"], p["target"]) for p in result["probes"]}
    assert {("AE", "actor"), ("AE", "scene"), ("AE", "action"), ("pixels 16x16", "actor")} <= targets
    for probe in result["probes"]:
        assert 0 <= probe["accuracy"] <= 1 and probe["uniform"] == pytest.approx(1 / probe["classes"])
    # The attacker never saw the victims: the synthetic splits have disjoint actors.
    assert result["actors"]["shared"] == [] and result["actors"]["victim"]
    assert [d["spec"] for d in result["defences"]] == ["none", "noise:1", "quant:2"]
    assert {d["encoder"] for d in result["defences"]} == {"KD"}  # --defend KD
    # Both encoders were audited: the project's AE trainer and the KD student (teacher + KD trainers).
    assert {"AE", "KD"} <= {r["encoder"] for r in result["attack"]}
    assert result["kd"]["kind"] == "VideoAutoEncoder3D" and "train_autoencoder" in result["autoencoder"]
    assert result["latents"] == "tinyact.training.extract.extract_latents"
    assert result["actors"]["shared"] == [] and set(result["actors"]["attacker"]).isdisjoint(result["actors"]["victim"])


def test_defences_refuse_an_encoder_that_is_not_audited():
    from benchmarks.privacy_audit import AuditData, EncodedSet, PrivacyConfig, run_audit
    from tinyact.errors import DatasetError

    n = 6
    data = AuditData(clips=np.zeros((n, 4, 3, 16, 16), np.uint8), labels=np.array(["a", "b"] * 3),
                     actors=np.array(["p", "q", "r"] * 2), scenes=np.array(["s"] * n),
                     splits=np.array(["train", "train", "val", "val", "test", "test"]))
    encoded = [EncodedSet("AE", np.zeros((n, 8), np.float32), AutoEncoder3DConfig(), None)]
    with pytest.raises(DatasetError, match="defended_encoder 'KD'"):
        run_audit(data, encoded, PrivacyConfig(defended_encoder="KD"))


def test_own_decoder_only_for_autoencoders_that_draw_frames():
    from benchmarks.privacy import frame_decoder
    from tinyact.models import VideoAutoEncoder3D

    rgb = VideoAutoEncoder3D.from_preset("fast", num_frames=4, input_size=32)
    residual = VideoAutoEncoder3D.from_preset("fast-motion", num_frames=4, input_size=32)
    assert frame_decoder(rgb) == rgb.decode
    assert frame_decoder(residual) is None  # it draws the motion residual, not the frame
    assert frame_decoder(torch.nn.Linear(2, 2)) is None
