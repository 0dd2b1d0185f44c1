"""``benchmarks/ae_presets.py --quick`` runs end to end and writes its result file (no timing assertions)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


@pytest.mark.slow
def test_ae_presets_quick(tmp_path):
    from benchmarks import ae_presets

    before = torch.get_num_threads()
    try:
        payload = ae_presets.main(["--quick", "--variants", "fast,fast-motion", "--threads", "1", "--work", str(tmp_path / "w"),
                                   "--json", str(tmp_path / "r.json")])
    finally:
        torch.set_num_threads(before)
    saved = json.loads((tmp_path / "r.json").read_text())
    assert saved["rows"][0]["variant"] == "fast" and 0 <= saved["rows"][0]["probe_top1"] <= 1
    assert saved["rows"][0]["val_psnr_db"] > 5 and "loadavg_before" in saved and "machine" in saved
    assert [r["variant"] for r in saved["rows"]] == ["fast", "fast-motion"]
    assert all(0 <= r["supervised_probe_top1"] <= 1 for r in saved["rows"])  # --quick includes the labelled ceiling
    assert payload["markdown"].startswith("| variant |")
