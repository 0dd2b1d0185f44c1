"""Autoencoder models: shapes and value range for every kind and preset, odd sizes, model files, FLOPs table."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from tinyact.cli import app
from tinyact.errors import ConfigError
from tinyact.models import FrameAutoEncoder2D, VideoAutoEncoder3D, build_autoencoder
from tinyact.models.autoencoder3d import Bottleneck3d
from tinyact.models.checkpoint import load_model, save_model, state_dict_hash
from tinyact.models.factory import presets
from tinyact.models.summary import summarize, to_markdown

pytestmark = pytest.mark.usefixtures("one_thread")

CASES = [(kind, preset) for kind in ("ae3d", "ae2d") for preset in presets(kind)]


def _small(kind: str, preset: str, frames: int, size):
    # Narrow channels keep the test fast; the shape logic (strides, pooling, decoder targets) is the preset's.
    torch.manual_seed(0)
    return build_autoencoder(kind, preset, num_frames=frames, input_size=size, channels=(4, 8, 8, 16)[: 4]).eval()


@pytest.mark.parametrize(("kind", "preset"), CASES)
@pytest.mark.parametrize(("frames", "size"), [(16, 32), (8, (48, 64)), (8, (40, 24)), (4, 8), (16, 112)])
def test_shapes_and_range(kind, preset, frames, size):
    model = _small(kind, preset, frames, size)
    h, w = (size, size) if isinstance(size, int) else size
    x = torch.randn(2, frames, 3, h, w)
    with torch.no_grad():
        z, recon = model(x)
        assert torch.equal(model.encode(x), z)
        again = model.decode(z)
    assert z.shape == (2, 1024) and z.dtype == torch.float32
    assert recon.shape == x.shape == again.shape  # round trip restores [B, T, C, H, W] exactly
    assert recon.min() >= 0 and recon.max() <= 1 and torch.isfinite(recon).all()
    assert model.input_shape == (frames, 3, h, w)
    # uint8 convenience path normalises first
    clips = torch.randint(0, 256, (1, frames, 3, h, w), dtype=torch.uint8)
    assert model.encode_uint8(clips).shape == (1, 1024)


def test_residual_mode_ignores_the_static_scene_and_reconstructs_the_residual():
    model = _small("ae3d", "fast-motion", 8, 32)
    assert model.config.input_mode == "residual"
    moving = torch.randn(2, 8, 3, 32, 32)
    static_scene = torch.randn(2, 1, 3, 32, 32).expand(-1, 8, -1, -1, -1)
    rgb = _small("ae3d", "fast", 8, 32)
    with torch.no_grad():
        residual_change = (model.encode(moving + static_scene) - model.encode(moving)).abs().max()
        rgb_change = (rgb.encode(moving + static_scene) - rgb.encode(moving)).abs().max()
    assert residual_change < 1e-5 < 1e-3 < rgb_change  # float rounding only vs a real change
    clips01 = torch.rand(2, 1, 3, 32, 32).expand(-1, 8, -1, -1, -1)  # a still clip: nothing moves
    torch.testing.assert_close(model.reconstruction_target(clips01), torch.full_like(clips01, 0.5))
    flash = clips01.clone()
    flash[:, 3] = 1.0  # one bright frame: above 0.5 there, below elsewhere, clipped to [0, 1]
    target = model.reconstruction_target(flash)
    assert target.min() >= 0 and target.max() <= 1 and (target[:, 3] >= 0.5).all() and (target[:, 0] <= 0.5).all()
    assert torch.equal(rgb.reconstruction_target(flash), flash)


def test_rgb_plus_residual_mode_sees_the_scene_and_the_motion():
    both = VideoAutoEncoder3D(num_frames=8, input_size=32, channels=(4, 8, 8, 16), input_mode="rgb+residual").eval()
    assert both.encoder[0].in_channels == 6  # the residual and the frames, stacked on the channels
    x = torch.randn(2, 8, 3, 32, 32)
    first = both.encoder_input(x)
    torch.testing.assert_close(first[:, :3], (x - x.mean(dim=1, keepdim=True)).permute(0, 2, 1, 3, 4))
    torch.testing.assert_close(first[:, 3:], x.permute(0, 2, 1, 3, 4))
    static_scene = torch.randn(2, 1, 3, 32, 32).expand(-1, 8, -1, -1, -1)
    with torch.no_grad():
        assert (both.encode(x + static_scene) - both.encode(x)).abs().max() > 1e-3  # the frames reach it
        assert both(x)[1].shape == x.shape
    still = torch.rand(1, 1, 3, 32, 32).expand(-1, 8, -1, -1, -1)
    torch.testing.assert_close(both.reconstruction_target(still), torch.full_like(still, 0.5))  # the residual


def test_stage_blocks_deepen_the_encoder_and_start_as_the_identity():
    torch.manual_seed(0)
    plain = VideoAutoEncoder3D(num_frames=8, input_size=32, channels=(4, 8, 8, 16)).eval()
    deep = VideoAutoEncoder3D(num_frames=8, input_size=32, channels=(4, 8, 8, 16), stage_blocks=(2, 1, 0, 1)).eval()
    assert sum(isinstance(m, Bottleneck3d) for m in deep.encoder) == 4
    assert list(plain.state_dict()) == list(VideoAutoEncoder3D(num_frames=8, input_size=32,
                                                               channels=(4, 8, 8, 16)).state_dict())
    # A new bottleneck adds nothing (its last BN starts at zero scale): with the plain layers' weights copied in,
    # the deep encoder computes the plain one's latent.
    plain_layers = [m for m in plain.encoder if not isinstance(m, Bottleneck3d)]
    deep_layers = [m for m in deep.encoder if not isinstance(m, Bottleneck3d)]
    for source, target in zip(plain_layers, deep_layers, strict=True):
        target.load_state_dict(source.state_dict())
    deep.to_latent.load_state_dict(plain.to_latent.state_dict())
    x = torch.randn(2, 8, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(deep.encode(x), plain.encode(x))
        assert deep(x)[1].shape == x.shape
    with pytest.raises(ValueError, match="one count per stage"):
        VideoAutoEncoder3D(channels=(4, 8), stage_blocks=(1,))


@pytest.mark.parametrize(("kind", "preset"), CASES)
def test_full_width_presets_train_a_step(kind, preset):
    model = build_autoencoder(kind, preset, num_frames=4, input_size=16)
    x = torch.rand(2, 4, 3, 16, 16)
    z, recon = model(x)
    torch.nn.functional.mse_loss(recon, x).backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    assert z.shape == (2, model.config.latent_dim)


def test_ae2d_concat_keeps_frame_order_and_mean_does_not():
    torch.manual_seed(0)
    x = torch.randn(1, 4, 3, 16, 16)
    reversed_x = x.flip(1)
    concat = FrameAutoEncoder2D(num_frames=4, input_size=16, channels=(4, 8)).eval()
    mean = FrameAutoEncoder2D(num_frames=4, input_size=16, channels=(4, 8), temporal="mean").eval()
    with torch.no_grad():
        assert not torch.allclose(concat.encode(x), concat.encode(reversed_x))
        torch.testing.assert_close(mean.encode(x), mean.encode(reversed_x))
    with pytest.raises(ValueError, match="T=4"):
        concat.encode(torch.randn(1, 3, 3, 16, 16))
    with pytest.raises(ValueError, match="B, T, C, H, W"):
        concat.encode(torch.randn(4, 3, 16, 16))


@pytest.mark.parametrize(("kind", "cls"), [("ae3d", VideoAutoEncoder3D), ("ae2d", FrameAutoEncoder2D)])
def test_model_files_rebuild_either_kind(tmp_path, kind, cls):
    model = _small(kind, "fast", 8, (24, 32))
    weights = save_model(tmp_path / "m.pt", model)
    loaded, info = load_model(tmp_path / "m.pt")
    assert isinstance(loaded, cls) and info["kind"] == cls.__name__
    assert state_dict_hash(loaded.state_dict()) == weights
    x = torch.randn(1, 8, 3, 24, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded.encode(x), model.encode(x))
    assert loaded.config == model.config


def test_factory_rejects_unknown_kinds_presets_and_fields():
    with pytest.raises(ConfigError, match="kind"):
        build_autoencoder("ae4d")
    with pytest.raises(ConfigError, match="preset"):
        build_autoencoder("ae2d", "tiny")
    with pytest.raises(ConfigError, match="override"):
        build_autoencoder("ae3d", "fast", colour=True)


def test_flops_match_the_hand_count_of_the_paper_text():
    row = summarize("ae3d", "paper", 224)
    # Issue 4: the literal text measures 5.18 M params and 5.38 GMACs at 16×224².
    assert row["encoder_params_m"] == pytest.approx(5.18, abs=0.01)
    assert row["encoder_gmacs"] == pytest.approx(5.38, abs=0.01)
    # Stem conv alone: 3→64, k 3×3×3, output 8×112×112 positions -> 2 * 27*3*64 * 8*112*112 FLOPs.
    first_conv = 2 * 27 * 3 * 64 * 8 * 112 * 112
    assert row["encoder_gflops"] * 1e9 > first_conv
    fast = summarize("ae3d", "fast", 224)
    assert fast["encoder_gflops"] < row["encoder_gflops"] / 3 and fast["encoder_params_m"] == row["encoder_params_m"]
    assert summarize("ae2d", "paper", (48, 64), frames=8)["size"] == "48x64"
    assert "| ae3d | paper | 16 | 224 |" in to_markdown([row])


def test_models_summary_cli():
    result = CliRunner().invoke(app, ["models", "summary", "--sizes", "112", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert {(r["kind"], r["preset"]) for r in rows} == set(CASES) and all(r["size"] == 112 for r in rows)
    bad = CliRunner().invoke(app, ["models", "summary", "--sizes", "big"])
    assert bad.exit_code == 2


def test_a_grown_model_starts_as_the_smaller_one_and_refuses_what_it_cannot_grow():
    torch.manual_seed(0)
    small = VideoAutoEncoder3D(num_frames=8, input_size=32, channels=(4, 8, 8, 16), input_mode="residual",
                               stage_blocks=(0, 1, 0, 0))
    for module in small.modules():  # trained-looking BN statistics and non-zero block outputs
        if isinstance(module, torch.nn.BatchNorm3d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.weight.data.uniform_(0.5, 1.5)
    small.eval()
    big = VideoAutoEncoder3D(num_frames=8, input_size=32, channels=(4, 8, 8, 16), input_mode="rgb+residual",
                             stage_blocks=(1, 2, 0, 1)).eval()
    big.grow_from(small)
    x = torch.randn(2, 8, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(big.encode(x), small.encode(x))
        torch.testing.assert_close(big(x)[1], small(x)[1])
    with pytest.raises(ValueError, match="channels"):
        VideoAutoEncoder3D(num_frames=8, input_size=32, channels=(4, 8, 8, 32)).grow_from(small)
    with pytest.raises(ValueError, match="input_mode"):
        VideoAutoEncoder3D(num_frames=8, input_size=32, channels=(4, 8, 8, 16), input_mode="rgb").grow_from(small)
    fewer = VideoAutoEncoder3D(num_frames=8, input_size=32, channels=(4, 8, 8, 16), input_mode="residual",
                               stage_blocks=(0, 0, 0, 0))
    fewer.grow_from(small)  # a stage with fewer blocks keeps the shared layers and skips the block
    convs = [[m for m in model.encoder if isinstance(m, torch.nn.Conv3d)] for model in (fewer, small)]
    assert all(torch.equal(a.weight, b.weight) for a, b in zip(*convs, strict=True))  # stage 3's conv re-indexed
    assert torch.equal(fewer.to_latent.weight, small.to_latent.weight)


def test_a_stem_at_another_stride_keeps_every_weight():
    torch.manual_seed(0)
    coarse = VideoAutoEncoder3D(num_frames=8, input_size=32, channels=(4, 8, 8, 16), stem_stride=(2, 4, 4),
                                stage_blocks=(1, 0, 0, 0))
    fine = VideoAutoEncoder3D(num_frames=8, input_size=32, channels=(4, 8, 8, 16), stem_stride=(2, 2, 2),
                              stage_blocks=(1, 0, 0, 0))
    fresh_from_latent = fine.from_latent.weight.clone()
    fine.grow_from(coarse)
    ours, theirs = fine.state_dict(), coarse.state_dict()
    shared = [k for k in theirs if k in ours and ours[k].shape == theirs[k].shape]
    assert all(torch.equal(ours[k], theirs[k]) for k in shared)  # the encoder and decoder convolutions
    # Sized by the pre-pool grid, and the kernel that undoes the stem's stride: those keep their fresh start.
    assert set(theirs) - set(shared) == {"from_latent.weight", "from_latent.bias", "decoder.3.deconv.weight"}
    assert torch.equal(fine.from_latent.weight, fresh_from_latent)
    x = torch.randn(2, 8, 3, 32, 32)
    assert fine.encode(x).shape == (2, 1024) and fine(x)[1].shape == x.shape
    # Coarser too (time for space, as in benchmarks/finer_stem.py): the same weights at other positions.
    traded = VideoAutoEncoder3D(num_frames=8, input_size=32, channels=(4, 8, 8, 16), stem_stride=(4, 2, 2),
                                stage_blocks=(1, 0, 0, 0))
    traded.grow_from(fine)
    assert torch.equal(traded.encoder[0].weight, coarse.encoder[0].weight)
    assert traded.encode(x).shape == (2, 1024) and traded(x)[1].shape == x.shape


def test_a_wider_stem_kernel_starts_as_the_narrower_one_and_reads_the_rows_it_skipped():
    torch.manual_seed(0)
    narrow = VideoAutoEncoder3D(num_frames=8, input_size=32, channels=(4, 8, 8, 16), stem_stride=(2, 4, 4)).eval()
    wide = VideoAutoEncoder3D(num_frames=8, input_size=32, channels=(4, 8, 8, 16), stem_stride=(2, 4, 4),
                              stem_kernel=(3, 5, 5)).eval()
    wide.grow_from(narrow)
    x = torch.randn(2, 8, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(wide.encode(x), narrow.encode(x))  # the old kernel, centred, new taps at zero
        # A change on a row the 3-wide kernel never reads (row 2 of every 4; outputs read rows 4i-1 .. 4i+1):
        moved = x.clone()
        moved[:, ::2, :, 2::4] += 1.0  # in every other frame: something moves there
        torch.testing.assert_close(narrow.encode(moved), narrow.encode(x))
        wide.encoder[0].weight.normal_()  # once its outer taps have trained, the wide stem sees it
        assert not torch.allclose(wide.encode(moved), wide.encode(x))
    with pytest.raises(ValueError, match="a kernel can only grow"):
        narrow.grow_from(wide)
    with pytest.raises(ValueError, match="odd"):
        VideoAutoEncoder3D(num_frames=8, input_size=32, channels=(4, 8, 8, 16), stem_kernel=(3, 4, 4))
