"""Encoder benchmark: latency, throughput, parameters, multiply-adds and % of matmul peak per preset and size.

    python benchmarks/encoder.py --json docs/results/encoder.json   # full: paper/fast × 112/160/224 × 3 modes
    python benchmarks/encoder.py --quick                            # seconds: tiny inputs (the test suite)

Rows: each ``VideoAutoEncoder3D`` preset (encoder only: what runs on the edge) at 16×112², 16×160², 16×224²
in fp32 eager, bf16 autocast and ``torch.compile`` (inductor, weight freezing); batch-1 and batch-5 latency
(median and p25–p75), clips/s at batch 5, batching gain (5 × batch-1 time / batch-5 time), and achieved
FLOP/s as % of the machine's measured fp32 matmul peak (2 FLOPs per multiply-add, convolutions + matmuls as
counted by ``torch.utils.flop_counter``). Threads are pinned; the machine and its load average are recorded.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from benchmarks.common import (  # noqa: E402
    add_malloc_option,
    apply_malloc_option,
    console,
    machine_info,
    markdown_table,
    print_table,
    save_results,
)
from benchmarks.modelbench import latency, load_info, matmul_peak, pin_threads  # noqa: E402
from benchmarks.peer_models import count_macs  # noqa: E402
from tinyact.models.autoencoder3d import VideoAutoEncoder3D  # noqa: E402
from tinyact.models.export import EncoderGraph  # noqa: E402

MODES = ("fp32", "bf16", "compile")


def encoder_params(model: VideoAutoEncoder3D) -> int:
    return sum(p.numel() for m in model.encoder_modules() for p in m.parameters())


def make_fn(model: VideoAutoEncoder3D, mode: str):
    """A callable ``x -> z`` for ``mode``; compiled graphs specialise per input shape (batch 1 and 5)."""
    graph: Callable[[torch.Tensor], torch.Tensor] = EncoderGraph(model).eval()
    if mode == "compile":
        import torch._inductor.config as inductor_config

        inductor_config.freezing = True
        # Every row compiles the same forward(): without a reset the earlier rows' graphs count against dynamo's
        # recompile limit (8), and from the fifth row on it silently runs eager.
        torch._dynamo.reset()
        graph = torch.compile(graph, dynamic=False)

    def run(x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=mode == "bf16"):
            return graph(x)

    return run


def bench_encoder(
    preset: str, frames: int, size: int, mode: str, runs: int, peak: float, budget_s: float, warmup: int = 2
) -> dict:
    torch.manual_seed(0)
    model = VideoAutoEncoder3D.from_preset(preset, num_frames=frames, input_size=size).eval()
    x1, x5 = torch.randn(1, frames, 3, size, size), torch.randn(5, frames, 3, size, size)
    with torch.device("meta"):
        meta = VideoAutoEncoder3D.from_preset(preset, num_frames=frames, input_size=size).eval()
        macs = count_macs(meta, torch.zeros(1, frames, 3, size, size), meta.encode)
    fn = make_fn(model, mode)
    b1 = latency(lambda: fn(x1), runs, warmup=warmup, budget_s=budget_s)
    b5 = latency(lambda: fn(x5), max(min(runs, 3), runs // 4), warmup=warmup, budget_s=budget_s)
    return {
        "preset": preset, "frames": frames, "size": size, "mode": mode,
        "params": encoder_params(model), "gmacs": macs / 1e9,
        "b1": b1.as_dict(), "b5": b5.as_dict(), "clips_per_s_b5": 5 / b5.median,
        "batching_gain": 5 * b1.median / b5.median,
        "pct_peak_b1": 100 * 2 * macs / b1.median / peak, "pct_peak_b5": 100 * 2 * macs * 5 / b5.median / peak,
        "_b1": b1, "_b5": b5,
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny inputs, eager modes only (the test suite)")
    parser.add_argument("--runs", type=int, default=20, help="timed batch-1 runs per row (batch 5: runs/4)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[112, 160, 224])
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    parser.add_argument("--budget", type=float, default=60.0, help="max timed seconds per row and batch size")
    parser.add_argument("--max-minutes", type=float, default=15.0, help="overall time budget shared by the rows")
    parser.add_argument("--json", type=Path, default=None, help="also write results here")
    add_malloc_option(parser)
    args = parser.parse_args(argv)
    if args.quick:
        args.runs, args.sizes, args.frames, args.modes, args.budget = 2, [32], 4, ["fp32", "bf16"], 5.0

    threads = pin_threads(args.threads)
    apply_malloc_option(args)
    machine = machine_info()
    load_before = load_info()
    peak = matmul_peak(0.3 if args.quick else 2.0)
    print(machine, load_before, f"fp32 matmul peak {peak / 1e9:.1f} GFLOP/s with {threads} threads")
    rows = []
    combos = [(p, s, m) for p in ("paper", "fast") for s in args.sizes for m in args.modes]
    deadline = time.perf_counter() + 60 * args.max_minutes
    for index, (preset, size, mode) in enumerate(combos):
        # Rows share --max-minutes; a compile row's compilation is not timed but does use the budget.
        budget = min(args.budget, max(1.0, (deadline - time.perf_counter()) / (len(combos) - index) / 3))
        console.log(f"{preset} {args.frames}×{size}² {mode}")
        rows.append(bench_encoder(preset, args.frames, size, mode, args.runs, peak, budget,
                                  warmup=1 if args.quick else 2))
    columns = ["preset", "input", "mode", "params (M)", "GMACs", "batch-1 ms (p25–p75)", "batch-5 ms",
               "clips/s (b5)", "b5 gain", "% peak b1", "% peak b5"]
    table = [
        [r["preset"], f"{r['frames']}×{r['size']}²", r["mode"], f"{r['params'] / 1e6:.2f}", f"{r['gmacs']:.2f}",
         r["_b1"].ms(), f"{r['_b5'].median * 1e3:.1f}", f"{r['clips_per_s_b5']:.1f}", f"{r['batching_gain']:.2f}×",
         f"{r['pct_peak_b1']:.0f}", f"{r['pct_peak_b5']:.0f}"]
        for r in rows
    ]
    load_after = load_info()
    title = f"TinyAct encoder, {threads} threads, matmul peak {peak / 1e9:.0f} GFLOP/s, load {load_before['loadavg']}"
    print_table(title, columns, table)
    print(markdown_table(columns, table))
    for r in rows:
        r.pop("_b1"), r.pop("_b5")
    paper224 = [r for r in rows if r["preset"] == "paper" and r["size"] == max(args.sizes) and r["mode"] == "fp32"]
    result = {
        "threads": threads, "matmul_peak_gflops": peak / 1e9, "load_before": load_before, "load_after": load_after,
        "columns": columns, "table": table, "rows": rows,
        "targets": {"paper_fp32_pct_peak_b5 (target >= 70)": paper224[0]["pct_peak_b5"] if paper224 else None},
    }
    save_results(args.json, {"machine_threads": threads, **result})
    return result


if __name__ == "__main__":
    main()
