"""How to quantise the encoder to int8 with the least drift: calibration methods, and which layers matter.

    python benchmarks/int8_sensitivity.py [--encoder zoo:everyday-64] [--dataset NAME=FOLDER:SPLITCSV ...]
        [--json docs/results/int8_sensitivity.json]

``torch-int8`` (:func:`tinyact.models.quantize.quantize_encoder`) quantises every convolution, bottleneck block and
the projection. Per dataset (default: the two Weizmann sets, evaluation data), the encoder's windows of the *train*
clips calibrate (as ``benchmarks/real_footage.py`` does) and the drift is measured on the *val* clips' windows: the
relative L2 distance and the cosine of the int8 latents to the fp32 ones. Tables:

1. calibration methods (:class:`~tinyact.models.quantize.Int8Options`): global min-max activation ranges (what
   shipped before), the mean of per-batch ranges, that plus quantisation-aware fine-tuning (the default), and the
   default with the ``--float-units`` kept in float; each with its batch-1 latency against fp32; and the two
   ranges for ``onnx-int8`` (ONNX Runtime's static QDQ quantisation, :func:`tinyact.models.export.quantize_static`);
2. everything int8, then every unit kept in float alone (``float_modules``, calibrated with ``--unit-ranges`` and
   no fine-tuning, so that the ~40 quantisations take seconds): how much of the drift that one unit causes;
3. greedily, the most helpful units kept in float together (1, 2, 3 units, each step the unit that lowers the mean
   val drift over the datasets most), with its batch-1 latency against all-int8 and fp32: the price of the fix.

Chosen on val only; the test split's top-1 is ``real_footage.py``'s job.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import console, latency_ms, print_table, save_results  # noqa: E402
from benchmarks.real_footage import DEFAULT_DATASETS, drift, encode_all, parse_dataset  # noqa: E402
from tinyact.data.cache import ClipCache, build_cache  # noqa: E402
from tinyact.data.layouts import read_folder  # noqa: E402
from tinyact.data.manifest import Manifest  # noqa: E402
from tinyact.models.autoencoder3d import VideoAutoEncoder3D  # noqa: E402
from tinyact.models.export import export_onnx, quantize_static  # noqa: E402
from tinyact.models.quantize import Int8Options, quantizable_units, quantize_encoder  # noqa: E402
from tinyact.models.runtime import load_runtime  # noqa: E402
from tinyact.zoo import encoder_sampling, get_entry, load_model_spec  # noqa: E402


def windows(folder: Path, split_file: Path, split: str, model: VideoAutoEncoder3D, spec: str,
            cache_dir: Path) -> np.ndarray:
    """Every window of the ``split`` clips, read as the encoder reads videos: uint8 ``[N, T, 3, S, S]``."""
    entries, _ = read_folder(folder, split_file=split_file)
    manifest = Manifest([e for e in entries if e.split == split], folder.resolve())
    entry = get_entry(spec[4:]) if spec.startswith("zoo:") else None
    reading = encoder_sampling(entry, model.config.num_frames, int(model.config.input_size[0]))
    build_cache(manifest, cache_dir, reading, workers=1)
    cache = ClipCache(cache_dir)
    clips = [cache.get_array(e.clip_id) for e in manifest.entries if e.clip_id in cache]
    return np.concatenate([c.reshape(-1, *c.shape[-4:]) for c in clips])


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--encoder", default="zoo:everyday-64", help="zoo:NAME or a 3-D autoencoder model file")
    parser.add_argument("--dataset", action="append", type=parse_dataset, default=None, metavar="NAME=FOLDER:SPLITCSV")
    parser.add_argument("--work", type=Path, default=Path("runs/int8_sensitivity"), help="window caches")
    parser.add_argument("--greedy", type=int, default=3, help="units kept in float together, at most")
    parser.add_argument("--repeats", type=int, default=30, help="timed batch-1 calls per latency")
    parser.add_argument("--unit-ranges", choices=["batch-mean", "minmax"], default="batch-mean",
                        help="activation ranges of tables 2-3 (no fine-tuning there)")
    parser.add_argument("--float-units", nargs="*", default=["encoder.3", "encoder.4", "encoder.5"], metavar="UNIT",
                        help="units kept in float in table 1's last row")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    model, info = load_model_spec(args.encoder)
    if not isinstance(model, VideoAutoEncoder3D):
        raise SystemExit(f"{args.encoder}: int8 quantisation takes a VideoAutoEncoder3D, not {type(model).__name__}")
    model = model.float().eval()
    datasets = args.dataset or [parse_dataset(text) for text in DEFAULT_DATASETS]
    data: dict[str, dict[str, np.ndarray]] = {}
    for name, folder, split_file in datasets:
        train = windows(folder, split_file, "train", model, args.encoder, args.work / name / "train")
        val = windows(folder, split_file, "val", model, args.encoder, args.work / name / "val")
        data[name] = {"calibration": train, "val": val, "fp32": encode_all(load_runtime("torch", model), val)}
        console.print(f"{name}: {len(train)} train windows calibrate, {len(val)} val windows measure")

    calibration = next(iter(data.values()))["calibration"]
    shape = tuple(calibration.shape[1:])
    unit_options = Int8Options(ranges=args.unit_ranges, finetune_steps=0)

    def score(units: tuple[str, ...], options: Int8Options = unit_options) -> dict[str, dict[str, float]]:
        per = {}
        for name, d in data.items():
            runtime = load_runtime("torch-int8", model, calibration=d["calibration"], float_modules=units,
                                   int8_options=options)
            per[name] = drift(d["fp32"], encode_all(runtime, d["val"]))
        return per

    def mean_l2(per: dict[str, dict[str, float]]) -> float:
        return float(np.mean([v["latent_rel_l2"] for v in per.values()]))

    fp32_ms = latency_ms(model, shape, args.repeats)
    methods = {"min-max ranges (before)": (Int8Options(ranges="minmax", finetune_steps=0), ()),
               "batch-mean ranges": (Int8Options(finetune_steps=0), ()),
               "batch-mean + fine-tuning (default)": (Int8Options(), ()),
               f"default, {' '.join(args.float_units)} in float": (Int8Options(), tuple(args.float_units))}
    method_rows: list[dict[str, Any]] = []
    for label, (options, units) in methods.items():
        tic = time.perf_counter()
        per = score(units, options)
        seconds = (time.perf_counter() - tic) / len(data)
        ms = latency_ms(quantize_encoder(model, calibration, float_modules=units, options=options), shape, args.repeats)
        method_rows.append({"method": label, "options": asdict(options), "float_modules": list(units), "drift": per,
                            "quantize_s": round(seconds, 1), "batch1_ms": ms})
    onnx_rows: list[dict[str, Any]] = []
    fp32_onnx = export_onnx(model, args.work / "encoder.onnx")
    for ranges in ("minmax", "batch-mean"):
        per = {}
        for name, d in data.items():
            graph = quantize_static(fp32_onnx, args.work / f"{name}.{ranges}.int8.onnx", d["calibration"],
                                    stats=model.config.normalization, ranges=ranges)
            per[name] = drift(d["fp32"], encode_all(load_runtime("onnx-int8", model, onnx_path=graph), d["val"]))
        onnx_rows.append({"ranges": ranges, "drift": per})
    print_table(f"onnx-int8 (ONNX Runtime QDQ) calibration ranges ({args.encoder}): val drift (rel. L2)",
                ["ranges", *(f"{n} rel. L2" for n in data), "mean rel. L2"],
                [[r["ranges"], *(f"{r['drift'][n]['latent_rel_l2']:.3f}" for n in data), f"{mean_l2(r['drift']):.3f}"]
                 for r in onnx_rows])
    print_table(f"int8 calibration methods ({args.encoder}): val drift (rel. L2), batch-1 latency (fp32 {fp32_ms:.1f} ms)",
                ["method", *(f"{n} rel. L2" for n in data), "mean rel. L2", "quantise s / dataset", "batch-1 ms"],
                [[r["method"], *(f"{r['drift'][n]['latent_rel_l2']:.3f}" for n in data), f"{mean_l2(r['drift']):.3f}",
                  f"{r['quantize_s']:.1f}", f"{r['batch1_ms']:.1f}"] for r in method_rows])

    all_units = quantizable_units(model)
    alone = {unit: score((unit,)) for unit in all_units}
    base = score(())
    rows = [["(none: all int8)", *(f"{base[n]['latent_rel_l2']:.3f} / {base[n]['latent_cosine']:.3f}" for n in data)]]
    rows += [[unit, *(f"{per[n]['latent_rel_l2']:.3f} / {per[n]['latent_cosine']:.3f}" for n in data)]
             for unit, per in alone.items()]
    print_table(f"int8 drift on val windows with one unit kept in float ({args.encoder}); rel. L2 / cosine to fp32",
                ["float unit", *data], rows)

    # Greedy: add the unit that lowers the mean val drift most, given the ones already kept.
    kept: tuple[str, ...] = ()
    steps: list[dict[str, Any]] = [{"float_modules": [], "drift": base}]
    for _ in range(args.greedy):
        trials = {unit: (alone[unit] if not kept else score((*kept, unit))) for unit in all_units if unit not in kept}
        best = min(trials, key=lambda u: mean_l2(trials[u]))
        kept = (*kept, best)
        steps.append({"float_modules": list(kept), "drift": trials[best]})
    for step in steps:
        step["batch1_ms"] = latency_ms(quantize_encoder(model, calibration, float_modules=step["float_modules"],
                                                        options=unit_options), shape, args.repeats)
    print_table("Units kept in float together (greedy on the mean val drift): drift and batch-1 latency",
                ["float units", *(f"{n} rel. L2" for n in data), "mean rel. L2", "batch-1 ms", "vs all-int8"],
                [[", ".join(s["float_modules"]) or "(none)", *(f"{s['drift'][n]['latent_rel_l2']:.3f}" for n in data),
                  f"{mean_l2(s['drift']):.3f}", f"{s['batch1_ms']:.1f}", f"{s['batch1_ms'] / steps[0]['batch1_ms']:.2f}x"]
                 for s in steps])
    console.print(f"fp32 batch-1: {fp32_ms:.1f} ms")
    payload = {"encoder": args.encoder, "encoder_hash": info["hash"], "protocol": __doc__,
               "windows": {n: {"calibration": len(d["calibration"]), "val": len(d["val"])} for n, d in data.items()},
               "methods": method_rows, "onnx_ranges": onnx_rows, "unit_options": asdict(unit_options), "all_int8": base, "one_unit_float": alone, "greedy": steps, "fp32_batch1_ms": fp32_ms,
               "seconds": round(time.perf_counter() - started, 1)}
    if args.json:
        save_results(args.json, payload)
    return payload


if __name__ == "__main__":
    main()
