"""``benchmarks/wire_bytes.py --quick`` runs end to end and its byte counts are consistent."""

from __future__ import annotations

import json

from benchmarks import wire_bytes


def test_wire_bytes_quick(tmp_path):
    out = tmp_path / "wire.json"
    result = wire_bytes.main(["--quick", "--json", str(out)])
    saved = json.loads(out.read_text())
    assert saved["machine"]["cores"] and saved["command"] and len(saved["loadavg"]) == 3
    rows = result["rows"]
    f16 = rows["message: float16 base64 (default)"]
    # base64 float16 of 1024 values is 2732 characters; the rest of the message is the clip id, camera and time.
    assert 2732 < f16 < 2732 + 200
    assert rows["message: int8 base64 + scale"] < f16 < rows["message: float32 base64"] < rows["message: plain JSON numbers (paper)"]
    assert rows["message: float16 base64 (default), gzip"] < f16
    assert rows["latent bytes float32 (1024-d, the paper's 4 KB)"] == 4096
    assert any(k.startswith("H.264 of the 16 frames") for k in rows)
