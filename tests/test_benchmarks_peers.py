"""``benchmarks/encoder.py --quick`` and ``benchmarks/peers.py --quick`` run end to end (no timing assertions)."""

from __future__ import annotations

import json

from benchmarks import encoder, peers
from benchmarks.peer_models import PEERS


def test_encoder_benchmark_quick(tmp_path):
    out = tmp_path / "encoder.json"
    # --malloc default: the retain switch is process-wide and would outlive this test (tested in test_allocator).
    result = encoder.main(["--quick", "--malloc", "default", "--json", str(out)])
    saved = json.loads(out.read_text())
    assert saved["command"] and saved["machine"]["cores"] and saved["load_before"]["loadavg"]
    assert saved["machine"]["allocator"] != "glibc-retain"
    assert {(r["preset"], r["mode"]) for r in result["rows"]} == {(p, m) for p in ("paper", "fast") for m in ("fp32", "bf16")}
    for row in result["rows"]:
        assert row["gmacs"] > 0 and row["params"] > 1e6 and row["clips_per_s_b5"] > 0
        assert 0 < row["b1"]["p25_ms"] <= row["b1"]["median_ms"] <= row["b1"]["p75_ms"]
        assert row["pct_peak_b5"] > 0
    paper, fast = (next(r for r in result["rows"] if r["preset"] == p and r["mode"] == "fp32") for p in ("paper", "fast"))
    assert fast["gmacs"] < paper["gmacs"] and fast["params"] == paper["params"]  # fast changes only the stem stride


def test_peers_benchmark_quick(tmp_path):
    out, md, png = tmp_path / "peers.json", tmp_path / "peers.md", tmp_path / "plot.png"
    result = peers.main(["--quick", "--malloc", "default", "--json", str(out), "--md", str(md), "--plot", str(png)])
    saved = json.loads(out.read_text())
    assert saved["machine"]["cpu"] and saved["matmul_peak_gflops"] > 0
    kinds = {r["kind"] for r in result["models"]["rows"]}
    assert set(PEERS) | {"enc:paper", "enc:fast", "ae:fast"} <= kinds
    for row in result["models"]["rows"]:
        assert row["params"] > 1e6 and row["gmacs"] > 0 and row["peak_rss_mib"] > 0 and row["batching_gain"] > 0
    runtimes = {r["runtime"]: r for r in result["runtimes"]["rows"]}
    assert {"eager fp32", "channels-last", "bf16 autocast", "ONNX Runtime fp32", "ONNX dynamic int8",
            "ONNX static int8 (QDQ)"} <= set(runtimes)
    assert runtimes["eager fp32"]["rel_l2"] == 0 and runtimes["eager fp32"]["agreement"] == 1
    assert runtimes["ONNX Runtime fp32"]["rel_l2"] < 1e-4
    int8 = runtimes["ONNX static int8 (QDQ)"]
    assert 0 < int8["rel_l2"] < 0.2 and int8["cosine"] > 0.98
    assert int8["size_mb"] < 0.4 * runtimes["ONNX Runtime fp32"]["size_mb"]
    assert result["runtimes"]["int8_options"]["finetune_steps"] == 3  # --quick: a few quantisation-aware steps
    torch_int8 = runtimes["PyTorch static int8 (oneDNN)"]
    assert 0 < torch_int8["rel_l2"] < 0.2 and torch_int8["cosine"] > 0.98
    assert torch_int8["size_mb"] < 0.4 * runtimes["eager fp32"]["size_mb"]
    assert set(result["ratios"]) >= {"onnx_static_int8_speedup_vs_eager_fp32", "torch_int8_speedup_vs_eager_fp32",
                                     "torch_int8_latency_over_x3d_xs_native_fp32", "torch_int8_top1_change_points"}
    assert "| model |" in md.read_text() and png.stat().st_size > 10_000
