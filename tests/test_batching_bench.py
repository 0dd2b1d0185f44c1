"""``benchmarks/batching.py --quick`` runs end to end and writes its result file (no timing assertions)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def test_batching_quick(tmp_path):
    from benchmarks import batching

    batching.main(["--quick", "--json", str(tmp_path / "r.json")])
    row = json.loads((tmp_path / "r.json").read_text())["rows"][0]
    assert row["preset"] == "fast" and set(row["ms"]) == {"1", "3"} and all(v > 0 for v in row["ms"].values())
    assert row["speedup"]["3"] == round(3 * row["ms"]["1"] / row["ms"]["3"], 2)
