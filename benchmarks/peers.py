"""Peers and runtimes benchmark: TinyAct's encoder side by side with lightweight action models, one process run.

    python benchmarks/peers.py --json docs/results/peers.json --md docs/bench/peers.md --plot docs/bench/peers_latency.png
    python benchmarks/peers.py --quick            # seconds: tiny inputs (the test suite)

Table 1 (models): X3D-XS, X3D-S, R(2+1)D-18, MoViNet-A0 (base), TSM-MobileNetV2 at their native input and at
the common 16×224², TinyAct ``paper``/``fast`` encoders and full autoencoders (encode + decode: the training
cost) at 16×224². Columns: parameters, GMACs at native and common input, batch-1 latency (median, p25–p75),
batch-5 clips/s, batching gain (5 × batch-1 time / batch-5 time), % of the measured fp32 matmul peak
(batch 5), peak RSS during the row, latency ratio to TinyAct ``fast``. All fp32 eager.

Table 2 (runtimes of the TinyAct encoder, ``--runtime-preset`` at 16×224², uint8 clips in, normalisation
included): eager fp32, channels-last, bf16 autocast, ``torch.compile`` + freezing, ONNX Runtime fp32, dynamic
int8, static int8 (QDQ, per-channel, calibrated on rendered synthetic clips), PyTorch static int8 on oneDNN
(:mod:`tinyact.models.quantize`, same calibration clips). Columns: latency, speed-up over
eager fp32, size on disk, latent drift vs fp32 (relative L2, cosine), and top-1 of a logistic-regression
classifier fitted on fp32 latents of synthetic training clips (held-out actors at test), evaluated on each
runtime's latents, plus agreement with the fp32 predictions. Without ``--checkpoint`` the encoder is randomly
initialised (random conv features: the accuracy is low, the change between runtimes is what matters).
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import tempfile
import time
import warnings
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from benchmarks.common import (  # noqa: E402
    add_malloc_option,
    apply_malloc_option,
    console,
    machine_info,
    markdown_table,
    print_table,
    quick_int8_options,
    save_results,
)
from benchmarks.modelbench import RssPeak, latency, load_info, matmul_peak, pin_threads  # noqa: E402
from benchmarks.peer_models import PEERS, build_peer, count_macs, count_params  # noqa: E402
from benchmarks.synth_clips import synthetic_clips  # noqa: E402
from tinyact.models.allocator import release_freed_buffers  # noqa: E402
from tinyact.models.autoencoder3d import VideoAutoEncoder3D  # noqa: E402
from tinyact.models.quantize import Int8Options  # noqa: E402

COMMON = (16, 224, 224)
RUNTIMES = [
    ("eager fp32", "torch", {}),
    ("channels-last", "torch-channels-last", {}),
    ("bf16 autocast", "torch-bf16", {}),
    ("torch.compile+freezing", "torch-compile", {}),
    ("ONNX Runtime fp32", "onnx", {}),
    ("ONNX dynamic int8", "onnx-int8", {"dynamic": True}),
    ("ONNX static int8 (QDQ)", "onnx-int8", {"static": True}),
    ("PyTorch static int8 (oneDNN)", "torch-int8", {"calibrate": True}),
]


# ----------------------------------------------------------------------------------------------- models
def _tinyact(preset: str, shape: tuple[int, int, int], full: bool, device: str = "cpu"):
    t, h, w = shape
    with torch.device(device):
        model = VideoAutoEncoder3D.from_preset(preset, num_frames=t, input_size=(h, w)).eval()
    fn = model if full else model.encode
    params = count_params(model) if full else sum(p.numel() for m in model.encoder_modules() for p in m.parameters())
    return model, fn, params, (t, 3, h, w)


def model_rows(args, peak: float) -> list[dict]:
    entries: list[tuple[str, str, tuple[int, int, int], bool]] = []  # (label, kind, (T,H,W), native?)
    for name, spec in PEERS.items():
        native = args.shape_of(spec.native)
        entries.append((name, name, native, True))
        if native != args.common:
            entries.append((name, name, args.common, False))
    for preset in ("paper", "fast"):
        entries.append((f"TinyAct {preset} encoder", f"enc:{preset}", args.common, True))
    for preset in ("paper", "fast") if not args.quick else ("fast",):
        entries.append((f"TinyAct {preset} full AE", f"ae:{preset}", args.common, True))

    def build(kind: str, shape: tuple[int, int, int], device: str = "cpu"):
        if kind.startswith(("enc:", "ae:")):
            return _tinyact(kind.split(":")[1], shape, kind.startswith("ae:"), device)
        with torch.device(device):
            model = build_peer(kind, num_classes=400)
        return model, model, count_params(model), (3, *shape)

    macs_cache: dict[tuple[str, tuple[int, int, int]], float] = {}

    def macs_of(kind: str, shape: tuple[int, int, int]) -> float:
        if (kind, shape) not in macs_cache:
            _, fn, _, in_shape = build(kind, shape, "meta")
            macs_cache[(kind, shape)] = count_macs(None, torch.zeros(1, *in_shape, device="meta"), fn)  # type: ignore[arg-type]
        return macs_cache[(kind, shape)]

    rows = []
    # Time budget: the model table gets 70 % of --max-minutes, shared evenly by the rows still to run.
    deadline = time.perf_counter() + 0.7 * 60 * args.max_minutes
    for index, (label, kind, shape, native) in enumerate(entries):
        budget = min(args.budget, max(1.0, (deadline - time.perf_counter()) / (len(entries) - index) / 3))
        if not args.quick:
            gc.collect()  # start each row from the same heap (peak RSS); costly, so not in --quick
            release_freed_buffers()
        console.log(f"{label} {shape}")
        torch.manual_seed(0)
        native_shape = args.shape_of(PEERS[kind].native) if kind in PEERS else args.common
        with RssPeak() as rss:
            model, fn, params, in_shape = build(kind, shape)
            x1, x5 = torch.randn(1, *in_shape), torch.randn(5, *in_shape)
            with torch.inference_mode():
                b1 = latency(partial(fn, x1), args.runs, warmup=args.warmup, budget_s=budget)
                # A batch of 5 costs ~5 batch-1 calls: heavy rows (R(2+1)D at 16×224²) get fewer, recorded runs.
                slow = b1.median > 2.0
                b5 = latency(partial(fn, x5), 1 if b1.median > 5.0 else args.runs5,
                             warmup=0 if slow else min(1, args.warmup), budget_s=budget)
        macs = macs_of(kind, shape)
        rows.append({
            "model": label, "kind": kind, "input": f"{shape[0]}×{shape[1]}²", "native": native,
            "params": params, "gmacs": macs / 1e9,
            "gmacs_native": macs_of(kind, native_shape) / 1e9, "gmacs_common": macs_of(kind, args.common) / 1e9,
            "b1": b1.as_dict(), "b5": b5.as_dict(), "b1_ms": b1.ms(),
            "clips_per_s_b5": 5 / b5.median, "batching_gain": 5 * b1.median / b5.median,
            "pct_peak_b5": 100 * 2 * macs * 5 / b5.median / peak,
            "peak_rss_mib": rss.peak_mib, "row_rss_mib": (rss.peak - rss.start) / 2**20,
        })
        del model, fn, x1, x5
    fast = next(r for r in rows if r["kind"] == "enc:fast")
    for r in rows:
        r["x_fast"] = r["b1"]["median_ms"] / fast["b1"]["median_ms"]
    return rows


# --------------------------------------------------------------------------------------------- runtimes
def _state_size(model: VideoAutoEncoder3D, folder: Path) -> int:
    path = folder / "encoder.pt"
    torch.save({f"{i}.{k}": v for i, m in enumerate(model.encoder_modules()) for k, v in m.state_dict().items()}, path)
    return path.stat().st_size


def runtime_rows(args) -> tuple[list[dict], dict]:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from tinyact.models.checkpoint import load_model
    from tinyact.models.export import export_onnx, quantize_dynamic, quantize_static
    from tinyact.models.quantize import save_int8
    from tinyact.models.runtime import TorchInt8Runtime, load_runtime

    t, h, w = args.common
    if args.checkpoint:
        loaded, _ = load_model(args.checkpoint)
        if not isinstance(loaded, VideoAutoEncoder3D):
            raise SystemExit(f"--checkpoint {args.checkpoint}: a VideoAutoEncoder3D file is needed, not {type(loaded).__name__}")
        model = loaded
        t, _, h, w = model.input_shape
        encoder = f"trained checkpoint {args.checkpoint}"
    else:
        torch.manual_seed(0)
        model = VideoAutoEncoder3D.from_preset(args.runtime_preset, num_frames=t, input_size=(h, w)).eval()
        encoder = f"randomly initialised {args.runtime_preset} preset"
    console.log(f"rendering {args.train_clips}+{args.test_clips}+{args.calib_clips} synthetic clips at {t}×{h}²")
    x_train, y_train = synthetic_clips(args.train_clips, frames=t, size=h, seed=11, split="train")
    x_test, y_test = synthetic_clips(args.test_clips, frames=t, size=h, seed=11, split="test")
    x_calib, _ = synthetic_clips(args.calib_clips, frames=t, size=h, seed=12, split="val")
    folder = Path(tempfile.mkdtemp(prefix="tinyact-runtimes-"))
    fp32_onnx = export_onnx(model, folder / "encoder.onnx", frames=t, size=(h, w))
    files = {
        "dynamic": quantize_dynamic(fp32_onnx, folder / "encoder.int8-dynamic.onnx"),
        "static": quantize_static(fp32_onnx, folder / "encoder.int8-static.onnx", x_calib),
    }
    torch_size = _state_size(model, folder)

    rows: list[dict] = []
    reference: np.ndarray | None = None
    classifier = None
    todo = [r for r in RUNTIMES if not (r[1] == "torch-compile" and args.quick)]
    deadline = time.perf_counter() + 0.25 * 60 * args.max_minutes
    for index, (label, backend, opts) in enumerate(todo):
        budget = min(args.budget, max(1.0, (deadline - time.perf_counter()) / (len(todo) - index) / 3))
        console.log(label)
        onnx_path = files["dynamic"] if opts.get("dynamic") else files["static"] if opts.get("static") else None
        if backend == "onnx":
            onnx_path = fp32_onnx
        started = time.perf_counter()
        runtime = load_runtime(backend, model, onnx_path=onnx_path,
                               calibration=x_calib if opts.get("calibrate") else None, int8_options=args.int8_options)
        one, five = x_test[:1], x_test[:5]
        runtime.encode(one)  # first call: compiles (torch.compile) or plans (ONNX Runtime)
        setup_s = time.perf_counter() - started
        b1 = latency(partial(runtime.encode, one), args.runs, warmup=args.warmup, budget_s=budget)
        b5 = latency(partial(runtime.encode, five), args.runs5, warmup=min(1, args.warmup), budget_s=budget)
        z_test = np.concatenate([runtime.encode(x_test[i : i + 5]) for i in range(0, len(x_test), 5)])
        if reference is None:  # eager fp32 comes first: the reference latents and the classifier
            reference = z_test
            z_train = np.concatenate([runtime.encode(x_train[i : i + 5]) for i in range(0, len(x_train), 5)])
            classifier = make_pipeline(StandardScaler(), LogisticRegression(max_iter=300, C=0.1))
            with warnings.catch_warnings():  # separable small sets never fully converge; 300 steps suffice
                warnings.simplefilter("ignore", ConvergenceWarning)
                classifier.fit(z_train, y_train)
            reference_pred = classifier.predict(reference)
        pred = classifier.predict(z_test)  # type: ignore[union-attr]
        rel = float(np.linalg.norm(z_test - reference) / np.linalg.norm(reference))
        cos = float(np.mean(np.sum(z_test * reference, 1)
                            / (np.linalg.norm(z_test, axis=1) * np.linalg.norm(reference, axis=1))))
        size = onnx_path.stat().st_size if onnx_path is not None else torch_size
        if isinstance(runtime, TorchInt8Runtime):
            size = save_int8(runtime.module, folder / "encoder.int8.pt").stat().st_size
        rows.append({
            "runtime": label, "backend": backend, "b1": b1.as_dict(), "b5": b5.as_dict(), "b1_ms": b1.ms(),
            "clips_per_s_b5": 5 / b5.median, "setup_s": setup_s, "size_mb": size / 1e6,
            "rel_l2": rel, "cosine": cos, "top1": float(np.mean(pred == y_test)),
            "agreement": float(np.mean(pred == reference_pred)),
        })
        del runtime
    eager = rows[0]["b1"]["median_ms"]
    for r in rows:
        r["speedup"] = eager / r["b1"]["median_ms"]
    info = {"encoder": encoder, "input": f"{t}×{h}²", "train_clips": len(x_train), "test_clips": len(x_test),
            "calibration_clips": len(x_calib), "classes": int(len(set(y_train.tolist()))),
            "int8_options": asdict(args.int8_options),
            "classifier": "StandardScaler + LogisticRegression fitted on eager-fp32 latents of the train split"}
    return rows, info


# ----------------------------------------------------------------------------------------------- output
def plot(rows: list[dict], runtimes: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5.5))
    for r in rows:
        colour = "tab:red" if r["kind"].startswith(("enc:", "ae:")) else "tab:blue"
        marker = "o" if r["native"] else "s"
        ax.scatter(r["gmacs"], r["b1"]["median_ms"], c=colour, marker=marker)
        ax.annotate(f"{r['model']} {r['input']}", (r["gmacs"], r["b1"]["median_ms"]), fontsize=7,
                    xytext=(3, 3), textcoords="offset points")
    fast = next((r for r in rows if r["kind"] == "enc:fast"), None)
    if fast:
        for rt in runtimes:
            if "int8" in rt["backend"]:
                ax.scatter(fast["gmacs"], rt["b1"]["median_ms"], c="tab:green", marker="^")
                ax.annotate(rt["runtime"], (fast["gmacs"], rt["b1"]["median_ms"]), fontsize=7,
                            xytext=(3, -9), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("GMACs per clip")
    ax.set_ylabel("batch-1 latency, ms (median)")
    ax.set_title("Latency vs multiply-adds (circle: native input, square: 16×224²; red: TinyAct; green: int8)")
    ax.title.set_fontsize(9)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny inputs and few runs (the test suite)")
    parser.add_argument("--runs", type=int, default=20, help="timed batch-1 runs per row")
    parser.add_argument("--runs5", type=int, default=3, help="timed batch-5 runs per row")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--budget", type=float, default=30.0, help="cap on timed seconds per row and batch size")
    parser.add_argument("--max-minutes", type=float, default=25.0,
                        help="overall time budget: rows share it, heavy rows then run fewer (recorded) repeats")
    parser.add_argument("--threads", type=int, default=None, help="torch / ONNX Runtime threads (default: all)")
    parser.add_argument("--runtime-preset", default="fast", choices=["paper", "fast"])
    parser.add_argument("--checkpoint", type=Path, default=None, help="trained encoder model.pt for table 2")
    parser.add_argument("--train-clips", type=int, default=96)
    parser.add_argument("--test-clips", type=int, default=48)
    parser.add_argument("--calib-clips", type=int, default=16)
    parser.add_argument("--skip-models", action="store_true", help="runtime table only")
    add_malloc_option(parser)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--md", type=Path, default=None, help="write the tables as markdown here")
    parser.add_argument("--plot", type=Path, default=None, help="latency-vs-GMACs PNG")
    args = parser.parse_args(argv)
    args.common = COMMON
    args.shape_of = lambda shape: shape
    if args.quick:
        # Every row and column, on inputs small enough for seconds (MoViNet's 5 stride-2 stages need 64 px).
        args.runs, args.runs5, args.warmup, args.budget = 2, 1, 0, 5.0
        args.train_clips, args.test_clips, args.calib_clips = 12, 6, 2
        args.common = (2, 64, 64)
        args.shape_of = lambda shape: args.common
    # --quick: PyTorch int8 with a few of the default 100 quantisation-aware steps (those were half its seconds).
    args.int8_options = quick_int8_options() if args.quick else Int8Options()

    threads = pin_threads(args.threads)
    apply_malloc_option(args)
    machine = machine_info()
    load_before = load_info()
    peak = matmul_peak(0.3 if args.quick else 2.0)
    console.print(machine, load_before, f"fp32 matmul peak {peak / 1e9:.1f} GFLOP/s, {threads} threads")
    started = time.perf_counter()
    rows = [] if args.skip_models else model_rows(args, peak)
    runtimes, runtime_info = runtime_rows(args)
    load_after = load_info()

    c = args.common
    model_cols = ["model", "input", "params (M)", "GMACs native", f"GMACs {c[0]}×{c[1]}²", "batch-1 ms (p25–p75)",
                  "runs", "b5 clips/s", "b5 gain", "% peak b5", "peak RSS MiB", "× fast"]
    model_table = [
        [r["model"], r["input"], f"{r['params'] / 1e6:.2f}", f"{r['gmacs_native']:.2f}", f"{r['gmacs_common']:.2f}",
         r["b1_ms"], r["b1"]["runs"], f"{r['clips_per_s_b5']:.2f}", f"{r['batching_gain']:.2f}×",
         f"{r['pct_peak_b5']:.0f}", f"{r['peak_rss_mib']:.0f}", f"{r['x_fast']:.2f}"]
        for r in rows
    ]
    rt_cols = ["runtime", "batch-1 ms (p25–p75)", "b5 clips/s", "speed-up", "size MB", "rel L2", "cosine",
               "top-1", "agree fp32"]
    rt_table = [
        [r["runtime"], r["b1_ms"], f"{r['clips_per_s_b5']:.1f}", f"{r['speedup']:.2f}×", f"{r['size_mb']:.1f}",
         f"{r['rel_l2']:.4f}", f"{r['cosine']:.5f}", f"{100 * r['top1']:.1f}", f"{100 * r['agreement']:.1f}"]
        for r in runtimes
    ]
    if rows:
        print_table(f"Peers, fp32 eager, {threads} threads, peak {peak / 1e9:.0f} GFLOP/s", model_cols, model_table)
    print_table(f"TinyAct encoder runtimes ({runtime_info['encoder']}, {runtime_info['input']})", rt_cols, rt_table)

    ratios: dict[str, float | str | None] = {}
    by_backend = {r["runtime"]: r for r in runtimes}
    eager = by_backend.get("eager fp32")
    xs = next((r for r in rows if r["kind"] == "x3d-xs" and r["native"]), None)
    # Eager batch 1 can fall on a slow native Conv3d (see docs/BENCHMARKS.md): also quote the fastest fp32 runtime.
    fp32 = [r for r in runtimes if "int8" not in r["backend"] and r["backend"] != "torch-bf16"]
    best_fp32 = min(fp32, key=lambda r: r["b1"]["median_ms"]) if fp32 else None
    for key, label in (("onnx_static_int8", "ONNX static int8 (QDQ)"), ("torch_int8", "PyTorch static int8 (oneDNN)")):
        int8 = by_backend.get(label)
        if not (int8 and eager):
            continue
        ratios[f"{key}_speedup_vs_eager_fp32"] = int8["speedup"]
        ratios[f"{key}_b5_speedup_vs_eager_fp32"] = int8["clips_per_s_b5"] / eager["clips_per_s_b5"]
        ratios[f"{key}_speedup_vs_best_fp32"] = best_fp32["b1"]["median_ms"] / int8["b1"]["median_ms"]  # type: ignore[index]
        ratios[f"{key}_top1_change_points"] = 100 * (int8["top1"] - eager["top1"])
        if xs:
            ratios[f"{key}_latency_over_x3d_xs_native_fp32"] = int8["b1"]["median_ms"] / xs["b1"]["median_ms"]
    if best_fp32:
        ratios["best_fp32_runtime"] = best_fp32["runtime"]
    fast = next((r for r in rows if r["kind"] == "enc:fast"), None)
    if fast and xs:
        ratios["fast_fp32_latency_over_x3d_xs_native_fp32"] = fast["b1"]["median_ms"] / xs["b1"]["median_ms"]
    console.print(ratios)
    result: dict[str, Any] = {
        "threads": threads, "matmul_peak_gflops": peak / 1e9, "load_before": load_before, "load_after": load_after,
        "wall_s": time.perf_counter() - started, "models": {"columns": model_cols, "table": model_table, "rows": rows},
        "runtimes": {"columns": rt_cols, "table": rt_table, "rows": runtimes, **runtime_info}, "ratios": ratios,
        "published": {name: {"params": s.published_params, "classes": s.published_classes,
                             "gmacs": s.published_gmacs, "native": s.native, "source": s.source}
                      for name, s in PEERS.items()},
    }
    save_results(args.json, result)
    if args.md:
        args.md.parent.mkdir(parents=True, exist_ok=True)
        args.md.write_text(
            f"Command: `{' '.join(sys.argv)}` ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
            f"{result['wall_s'] / 60:.0f} min).\n\n"
            f"Machine: {machine['cpu']}, {machine['cores']} cores, {threads} threads; load before "
            f"{load_before['loadavg']}, after {load_after['loadavg']}; fp32 matmul peak {peak / 1e9:.0f} GFLOP/s.\n\n"
            + (markdown_table(model_cols, model_table) + "\n\n" if rows else "")
            + f"Runtimes: {runtime_info['encoder']}, {runtime_info['input']}; classifier: {runtime_info['classifier']}, "
            f"{runtime_info['train_clips']} train / {runtime_info['test_clips']} test clips (held-out actors), "
            f"{runtime_info['classes']} classes; static int8 calibrated on {runtime_info['calibration_clips']} clips.\n\n"
            + markdown_table(rt_cols, rt_table) + "\n\nRatios: " + json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in ratios.items() if v is not None}) + "\n"
        )
    if args.plot and rows:
        plot(rows, runtimes, args.plot)
    return result


if __name__ == "__main__":
    main()
