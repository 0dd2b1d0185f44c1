"""``benchmarks/cloud_load.py --quick`` runs end to end and reports sane numbers (no timing assertions)."""

from __future__ import annotations

import json

from benchmarks import cloud_load


def test_cloud_load_quick(tmp_path):
    out = tmp_path / "cloud.json"
    result = cloud_load.main(["--quick", "--json", str(out)])
    saved = json.loads(out.read_text())
    assert saved["machine"]["cores"] and saved["command"]
    closed = [r for r in result["raw"] if r["mode"] == "closed"]
    assert {(r["batching"], r["clips_per_request"]) for r in closed} == {("on", 1), ("on", 16), ("off", 1), ("off", 16)}
    for row in result["raw"]:
        assert row["errors"] == 0 and row["requests"] > 0
        assert 0 < row["p50_ms"] <= row["p95_ms"] <= row["p99_ms"]
        assert row["clips_per_s"] > 0
    assert len(result["batching_gain"]["rows"]) == 2
