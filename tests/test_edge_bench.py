"""The edge benchmarks in ``--quick`` mode run end to end and report sane numbers (no timing assertions)."""

from __future__ import annotations

import json

import pytest

from benchmarks import edge_streams


@pytest.mark.slow
def test_edge_streams_quick(tmp_path):
    out = tmp_path / "edge_streams.json"
    result = edge_streams.main(["--quick", "--backends", "torch", "--json", str(out)])
    saved = json.loads(out.read_text())
    assert saved["machine"]["cores"] and saved["command"]
    for backend in ("torch",):
        row = result["backends"][backend]
        assert "skipped" not in row, row
        assert 1 <= row["max_cameras"] <= 4
        assert row["batch"]["k"] == 4 and row["batch"]["batch_gain"] > 0
        for tried in row["tried"]:
            assert tried["worst_round_s"] >= tried["mean_round_s"] > 0
            # Seeking: a clip decodes its window (15/8 s at 25 fps) plus at most the 2 s GOP before it.
            assert 16 <= tried["decoded_frames_per_clip"] <= 25 * (15 / 8 + 2) + 2


@pytest.mark.slow
def test_faults_quick(tmp_path):
    from benchmarks import faults

    out = tmp_path / "faults.json"
    result = faults.main(["--quick", "--transports", "http", "--json", str(out)])
    run = json.loads(out.read_text())["runs"][0]
    assert result["runs"][0]["captured"] == run["captured"] >= 60
    # The cloud was SIGKILLed twice and the agent once, and still every clip is there exactly once.
    kinds = [e["event"] for e in run["events"]]
    assert kinds.count("cloud SIGKILLed") == 2 and kinds.count("agent SIGKILLed") == 1
    assert run["cloud_rows"] == run["captured"] and run["duplicates"] == 0 and run["lost"] == 0
    assert run["phantoms"] == 0 and run["pending_at_end"] == 0
    assert run["send_failures"] > 0  # the outages were seen by the sender (and retried)
    assert run["results_back"] == run["captured"]
