"""Batched vs one-clip-at-a-time encoder throughput on a GPU (or the CPU): the paper's "5 streams, ~3.2x" claim.

    python benchmarks/batching.py --device cuda --json docs/results/batching_gpu.json
    python benchmarks/batching.py --quick                     # seconds, CPU, tiny clips (used by the tests)

The paper (Scalability) batches K concurrent camera clips as one ``[K, 16, 3, 224, 224]`` tensor and reports ~3.2x
the throughput of sequential processing for K = 5 on a Jetson Xavier NX. For each preset and precision this
times ``encode`` at batch 1 and at batch K (clips already on the device, normalised; CUDA events on a GPU) and
prints the speed-up ``K * t(1) / t(K)``: how much more a batch of K gets through than K single calls.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from benchmarks.common import (  # noqa: E402
    add_malloc_option,
    apply_malloc_option,
    markdown_table,
    median,
    print_table,
    save_results,
)
from tinyact.models import VideoAutoEncoder3D  # noqa: E402
from tinyact.models.base import encode_fn  # noqa: E402
from tinyact.training.runtime import Precision, autocast, pick_device  # noqa: E402


def time_encode(model: torch.nn.Module, clips: torch.Tensor, repeats: int, precision: Precision) -> float:
    """Median milliseconds of ``model.encode(clips)`` after warm-up calls."""
    cuda = clips.device.type == "cuda"
    encode = encode_fn(model)

    def once() -> float:
        if cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
        else:
            began = time.perf_counter()
        with autocast(clips.device, precision):
            encode(clips)
        if cuda:
            end.record()
            torch.cuda.synchronize()
            return start.elapsed_time(end)
        return 1000 * (time.perf_counter() - began)

    with torch.inference_mode():
        for _ in range(3):  # cuDNN algorithm search and lazy initialisation happen here
            once()
        return median([once() for _ in range(repeats)])


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", default="paper,fast")
    parser.add_argument("--batches", default="5,8,16", help="K values compared with batch 1")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--precisions", default="fp32,bf16")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--device", default="auto", help="cuda, cpu or auto")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", type=Path, default=None)
    add_malloc_option(parser)
    args = parser.parse_args(argv)
    if args.quick:
        args.presets, args.batches, args.size, args.frames, args.precisions, args.repeats = "fast", "3", 32, 8, "fp32", 3
        args.device, args.malloc = "cpu", "default"  # the retain switch is process-wide: not inside the test suite
    apply_malloc_option(args)
    device = pick_device(args.device)
    torch.backends.cudnn.benchmark = True
    batches = [int(k) for k in args.batches.split(",")]
    columns = ["preset", "precision", "batch 1 ms", *[f"batch {k} ms" for k in batches], *[f"speed-up K={k}" for k in batches]]
    rows, records = [], []
    for preset in args.presets.split(","):
        torch.manual_seed(0)
        model = VideoAutoEncoder3D.from_preset(preset, num_frames=args.frames, input_size=args.size).to(device).eval()
        clips = torch.randn(max(batches), args.frames, 3, args.size, args.size, device=device)
        for precision in args.precisions.split(","):
            ms = {k: time_encode(model, clips[:k], args.repeats, precision) for k in [1, *batches]}
            speedup = {k: round(k * ms[1] / ms[k], 2) for k in batches}
            records.append({"preset": preset, "precision": precision, "ms": ms, "speedup": speedup})
            rows.append([preset, precision, *[f"{ms[k]:.2f}" for k in [1, *batches]], *[speedup[k] for k in batches]])
            print(records[-1], flush=True)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    title = f"encoder batch K vs K single calls, {args.frames}x{args.size}², {name}"
    print_table(title, columns, rows)
    payload = {"title": title, "device": name, "torch": torch.__version__, "rows": records,
               "markdown": markdown_table(columns, rows), "settings": {k: str(v) for k, v in vars(args).items()}}
    save_results(args.json, payload)
    return payload


if __name__ == "__main__":
    main()
