"""Encoder runtimes and ONNX export: every backend gives the same latents (within its precision)."""

from __future__ import annotations

import functools

import numpy as np
import onnx
import pytest
import torch
from torch.ao.quantization.observer import MinMaxObserver

from benchmarks.common import quick_int8_options
from benchmarks.synth_clips import synthetic_clips
from tinyact.data.transforms import normalize
from tinyact.errors import TinyActError
from tinyact.models import VideoAutoEncoder3D
from tinyact.models.checkpoint import load_model, save_model
from tinyact.models.export import export_onnx, quantize_dynamic, quantize_static
from tinyact.models.quantize import (
    BatchMeanMinMaxObserver,
    Int8Options,
    load_int8,
    quantizable_units,
    quantize_encoder,
    save_int8,
)
from tinyact.models.runtime import BACKENDS, EncoderRuntime, load_runtime

FRAMES, SIZE = 8, 32
#: int8 with a few quantisation-aware fine-tuning steps where the fine-tuning is not what a test checks;
#: test_int8_fine_tuning_… checks the fine-tuning itself.
QUICK_INT8 = quick_int8_options()


def _calibrated(backend: str, clips: np.ndarray) -> dict:
    """``load_runtime``'s int8 arguments for ``backend`` (none for float backends)."""
    return {"calibration": clips, "int8_options": QUICK_INT8} if "int8" in backend else {}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    torch.manual_seed(0)
    model = VideoAutoEncoder3D.from_preset("fast", num_frames=FRAMES, input_size=SIZE).eval()
    folder = tmp_path_factory.mktemp("runtime")
    checkpoint = folder / "model.pt"
    save_model(checkpoint, model)
    clips, _ = synthetic_clips(6, frames=FRAMES, size=SIZE, seed=3)
    reference = load_runtime("torch", checkpoint).encode(clips)
    return checkpoint, clips, reference


def _drift(z: np.ndarray, ref: np.ndarray) -> tuple[float, float]:
    rel = float(np.linalg.norm(z - ref) / np.linalg.norm(ref))
    cos = float(np.mean(np.sum(z * ref, 1) / (np.linalg.norm(z, axis=1) * np.linalg.norm(ref, axis=1))))
    return rel, cos


@pytest.mark.parametrize("backend", [b for b in BACKENDS if b != "torch-compile"])
def test_backend_shape_and_drift(setup, backend):
    checkpoint, clips, reference = setup
    runtime = load_runtime(backend, checkpoint, **_calibrated(backend, clips))
    assert isinstance(runtime, EncoderRuntime) and runtime.backend == backend
    assert runtime.input_shape == (FRAMES, 3, SIZE, SIZE) and runtime.encoder_hash
    z = runtime.encode(clips)
    assert z.shape == (len(clips), 1024) and z.dtype == np.float32
    one = runtime.encode(torch.from_numpy(clips[0]))  # a single clip, as a tensor
    assert one.shape == (1, 1024)
    # Strided arrays encode exactly as contiguous ones: a decoder's [T, H, W, 3] frames viewed as [T, 3, H, W],
    # and a batch in reverse (negative strides).
    hwc_view = np.ascontiguousarray(clips.transpose(0, 1, 3, 4, 2)).transpose(0, 1, 4, 2, 3)
    np.testing.assert_allclose(runtime.encode(hwc_view), z, rtol=0, atol=1e-6)
    np.testing.assert_allclose(runtime.encode(clips[::-1]), z[::-1], rtol=0, atol=1e-6)
    rel, cos = _drift(z, reference)
    bound = {"torch-bf16": 0.05, "onnx-int8": 0.15, "torch-int8": 0.15}.get(backend, 1e-4)
    assert rel < bound, (backend, rel)
    assert cos > 1 - bound, (backend, cos)


def test_onnx_export_dynamic_batch_and_int8(setup, tmp_path):
    checkpoint, clips, reference = setup
    fp32 = export_onnx(checkpoint, tmp_path / "enc.onnx")
    graph = onnx.load(str(fp32))
    onnx.checker.check_model(graph)
    dims = graph.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "batch" and [d.dim_value for d in dims[1:]] == [FRAMES, 3, SIZE, SIZE]
    static = quantize_static(fp32, tmp_path / "static.onnx", clips)
    ops = {node.op_type for node in onnx.load(str(static)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    # Per-channel: the first conv's weight scale has one entry per output channel.
    init = {t.name: t for t in onnx.load(str(static)).graph.initializer}
    assert any(len(t.dims) == 1 and t.dims[0] == 64 and "scale" in name for name, t in init.items())
    # Batch-mean activation ranges (ONNX Runtime's CalibMovingAverage) never exceed the global min-max ones.
    def activation_scales(path):
        return {t.name: onnx.numpy_helper.to_array(t) for t in onnx.load(str(path)).graph.initializer
                if t.name.endswith("_scale") and not t.dims}

    narrow = activation_scales(quantize_static(fp32, tmp_path / "bm.onnx", clips, batch_size=2))
    wide = activation_scales(quantize_static(fp32, tmp_path / "mm.onnx", clips, batch_size=2, ranges="minmax"))
    assert narrow.keys() == wide.keys() and len(narrow) > 5
    assert all(narrow[k] <= wide[k] * (1 + 1e-6) for k in narrow) and any(narrow[k] < 0.99 * wide[k] for k in narrow)
    dynamic = quantize_dynamic(fp32, tmp_path / "dynamic.onnx")
    assert "ConvInteger" in {node.op_type for node in onnx.load(str(dynamic)).graph.node}
    for path in (static, dynamic):
        # int8 weights: the file is much smaller than the fp32 graph.
        assert path.stat().st_size < 0.4 * fp32.stat().st_size
        z = load_runtime("onnx-int8", checkpoint, onnx_path=path).encode(clips[:2])
        rel, cos = _drift(z, reference[:2])
        assert rel < 0.15 and cos > 0.98


def test_runtime_errors(setup, tmp_path):
    checkpoint, clips, _ = setup
    with pytest.raises(TinyActError, match="unknown encoder backend"):
        load_runtime("tensorrt", checkpoint)
    runtime = load_runtime("torch", checkpoint)
    with pytest.raises(TinyActError, match="expects clips"):
        runtime.encode(clips[:, :4])
    with pytest.raises(TinyActError, match="uint8"):
        runtime.encode(clips.astype(np.float32))
    with pytest.raises(TinyActError, match="calibration clips"):
        quantize_static(export_onnx(checkpoint, tmp_path / "e.onnx"), tmp_path / "q.onnx", clips[:, :4])


def test_torch_int8_quantises_saves_and_loads(setup, tmp_path):
    checkpoint, clips, reference = setup
    model, _ = load_model(checkpoint)
    module = quantize_encoder(model, clips[:4], options=QUICK_INT8)
    # Really int8: the convolutions are quantised modules, and the file is much smaller than the fp32 weights.
    graph = str(module.inlined_graph)
    assert graph.count("quantized::conv3d_relu") == 4 and "quantized::linear" in graph
    path = save_int8(module, tmp_path / "enc.int8.pt", encoder_hash=load_runtime("torch", checkpoint).encoder_hash)
    assert path.stat().st_size < 0.4 * checkpoint.stat().st_size
    fresh = load_runtime("torch-int8", checkpoint, int8_path=path).encode(clips)
    calibrated = load_runtime("torch-int8", checkpoint, calibration=clips[:4], int8_options=QUICK_INT8).encode(clips)
    np.testing.assert_array_equal(fresh, calibrated)  # the same calibration gives the same int8 model
    rel, cos = _drift(fresh, reference)
    assert rel < 0.15 and cos > 0.98
    stale = save_int8(module, tmp_path / "stale.int8.pt", encoder_hash="0123456789ab")  # from other weights
    with pytest.raises(TinyActError, match="was quantised from encoder 0123456789ab"):
        load_runtime("torch-int8", checkpoint, int8_path=stale)
    with pytest.raises(TinyActError, match="calibration clips or a quantised file"):
        load_runtime("torch-int8", checkpoint)
    with pytest.raises(TinyActError, match="calibration clips must be uint8"):
        quantize_encoder(model, clips[:, :4], options=QUICK_INT8)
    with pytest.raises(TinyActError, match="not found"):
        load_runtime("torch-int8", checkpoint, int8_path=tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a model")
    with pytest.raises(TinyActError, match="cannot load"):
        load_int8(tmp_path / "junk.pt")


@pytest.mark.slow
def test_torch_compile_backend(setup, monkeypatch):
    from torch._dynamo.utils import counters

    from tinyact.models import runtime as runtime_module

    checkpoint, clips, reference = setup
    compiled = load_runtime("torch-compile", checkpoint)
    z = compiled.encode(clips)
    assert z.shape == reference.shape
    assert _drift(z, reference)[0] < 1e-3
    # More batch sizes than torch.compile's default 8 recompiles: each still gets its own compiled graph (no
    # silent fall-back to eager), and batches over COMPILE_MAX_BATCH run in chunks of it. Dynamo's guards and
    # recompiles are what is tested here, so these graphs skip inductor's C++ code generation (minutes of gcc
    # for 10 graphs on a fresh checkout, whose paths miss inductor's cache); the graph above was inductor's.
    monkeypatch.setattr(runtime_module, "COMPILE_MAX_BATCH", 10)
    monkeypatch.setattr(torch, "compile", functools.partial(torch.compile, backend="eager"))
    torch._dynamo.reset()
    compiled = load_runtime("torch-compile", checkpoint)
    many = np.concatenate([clips, clips, clips])[:11]
    expected = np.concatenate([reference, reference, reference])[:11]
    graphs_before = counters["stats"]["unique_graphs"]
    for size in range(1, 12):
        assert _drift(compiled.encode(many[:size]), expected[:size])[0] < 1e-3, size
    assert counters["stats"]["unique_graphs"] - graphs_before == 10  # sizes 1..10; 11 ran as 10 + 1


def test_residual_input_mode_survives_export(tmp_path):
    # fast-motion subtracts the clip's mean frame inside encode(): the ONNX graphs must do the same.
    torch.manual_seed(0)
    model = VideoAutoEncoder3D.from_preset("fast-motion", num_frames=FRAMES, input_size=SIZE).eval()
    checkpoint = tmp_path / "model.pt"
    save_model(checkpoint, model)
    clips, _ = synthetic_clips(6, frames=FRAMES, size=SIZE, seed=3)
    reference = load_runtime("torch", checkpoint).encode(clips)
    for backend, bound in (("onnx", 1e-4), ("onnx-int8", 0.15), ("torch-int8", 0.15)):
        rel, cos = _drift(load_runtime(backend, checkpoint, **_calibrated(backend, clips)).encode(clips), reference)
        assert rel < bound and cos > 1 - bound, (backend, rel, cos)


def test_a_grown_encoder_runs_on_every_edge_backend(tmp_path):
    # The frames beside the residual and bottleneck blocks (what growing a zoo model adds) go through int8 and
    # ONNX like the plain network: the residual additions quantise, the stem takes six channels.
    torch.manual_seed(0)
    model = VideoAutoEncoder3D.from_preset("fast-motion", num_frames=FRAMES, input_size=SIZE,
                                           input_mode="rgb+residual", stage_blocks=(1, 1, 1, 1))
    for module in model.modules():  # blocks that do something (a new block is the identity)
        if isinstance(module, torch.nn.BatchNorm3d):
            torch.nn.init.uniform_(module.weight, 0.5, 1.5)
    checkpoint = tmp_path / "grown.pt"
    save_model(checkpoint, model.eval())
    clips, _ = synthetic_clips(6, frames=FRAMES, size=SIZE, seed=3)
    reference = load_runtime("torch", checkpoint).encode(clips)
    for backend in ("onnx", "torch-int8", "onnx-int8"):
        z = load_runtime(backend, checkpoint, **_calibrated(backend, clips)).encode(clips)
        rel, cos = _drift(z, reference)
        assert z.shape == (6, 1024) and rel < (0.15 if "int8" in backend else 1e-4) and cos > 0.98, (backend, rel)


def test_int8_keeps_the_named_units_in_float(setup):
    checkpoint, clips, reference = setup
    model, _ = load_model(checkpoint)
    assert quantizable_units(model) == ["encoder.0", "encoder.3", "encoder.6", "encoder.9", "to_latent"]
    mixed = quantize_encoder(model, clips[:4], float_modules=["encoder.0", "to_latent"], options=QUICK_INT8)
    graph = str(mixed.inlined_graph)
    # The stem convolution and the projection run in float; the other three convolutions stay int8.
    assert graph.count("quantized::conv3d_relu") == 3 and "quantized::linear" not in graph
    assert "aten::_convolution" in graph and "aten::linear" in graph
    with torch.inference_mode():
        z = mixed(normalize(torch.from_numpy(clips), model.config.normalization)).numpy()
    rel, cos = _drift(z, reference)
    assert rel < 0.15 and cos > 0.98
    with pytest.raises(TinyActError, match="cannot keep 'encoder.1' in float: choose from encoder.0"):
        quantize_encoder(model, clips[:4], float_modules=["encoder.1"], options=QUICK_INT8)  # a BatchNorm goes with its convolution


def test_torch_int8_runtime_takes_float_modules(setup):
    checkpoint, clips, reference = setup
    mixed = load_runtime("torch-int8", checkpoint, calibration=clips[:4], float_modules=["encoder.3"],
                         int8_options=QUICK_INT8)
    plain = load_runtime("torch-int8", checkpoint, calibration=clips[:4], int8_options=QUICK_INT8)
    z = mixed.encode(clips)
    assert not np.array_equal(z, plain.encode(clips))  # the unit really ran in float
    rel, cos = _drift(z, reference)
    assert rel < 0.15 and cos > 0.98


def test_batch_mean_ranges_average_each_batch_min_and_max():
    observer = BatchMeanMinMaxObserver()
    for batch in (torch.tensor([0.0, 2.0]), torch.tensor([-1.0, 6.0]), torch.tensor([])):  # an empty batch is skipped
        observer(batch)
    assert observer.min_val.item() == -0.5 and observer.max_val.item() == 4.0
    global_range = MinMaxObserver()
    for batch in (torch.tensor([0.0, 2.0]), torch.tensor([-1.0, 6.0])):
        global_range(batch)
    assert (global_range.min_val.item(), global_range.max_val.item()) == (-1.0, 6.0)


def test_int8_fine_tuning_brings_the_latents_closer_to_fp32(setup):
    _, clips, _ = setup
    torch.manual_seed(0)
    model = VideoAutoEncoder3D.from_preset("fast", num_frames=FRAMES, input_size=SIZE).eval()
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():  # channels of very different scales, as in a trained network: int8 then drifts visibly
        for norm in (m for m in model.modules() if isinstance(m, torch.nn.BatchNorm3d)):
            norm.weight.copy_(torch.exp(1.5 * torch.randn(norm.weight.shape, generator=generator)))
            norm.bias.normal_(0, 0.5, generator=generator)
    reference = load_runtime("torch", model).encode(clips)
    weights = {k: v.clone() for k, v in model.state_dict().items()}

    def encode(options: Int8Options) -> np.ndarray:
        module = quantize_encoder(model, clips, options=options)
        assert str(module.inlined_graph).count("quantized::conv3d_relu") == 4  # still every convolution in int8
        with torch.inference_mode():
            return module(normalize(torch.from_numpy(clips), model.config.normalization)).numpy()

    before = _drift(encode(Int8Options(finetune_steps=0, batch_size=4)), reference)[0]
    tuned = encode(Int8Options(finetune_steps=30, batch_size=4))
    assert _drift(tuned, reference)[0] < 0.8 * before, before
    np.testing.assert_array_equal(tuned, encode(Int8Options(finetune_steps=30, batch_size=4)))  # seeded
    assert all(torch.equal(v, weights[k]) for k, v in model.state_dict().items())  # the model itself is untouched
