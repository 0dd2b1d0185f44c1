"""``benchmarks/ae_long.py --quick``: trains to a deadline in a child process, then probes what it left."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


@pytest.mark.slow
def test_ae_long_quick(tmp_path):
    from benchmarks import ae_long

    ae_long.main(["--quick", "--threads", "1", "--device", "cpu", "--work", str(tmp_path / "w"), "--json", str(tmp_path / "r.json")])
    run = json.loads((tmp_path / "r.json").read_text())["runs"]["half"]
    rows = len((tmp_path / "w/half/metrics.csv").read_text().splitlines()) - 1
    assert run["epochs"] >= 1 and run["epochs"] in (rows, rows + 1)  # the model.pt's epoch; the kill may beat the CSV row
    assert 0 <= run["probe_top1"] <= 1 and 0 <= run["random_probe_top1"] <= 1 and run["val_psnr_db"] > 5
