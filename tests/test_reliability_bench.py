"""``benchmarks/reliability.py --quick``: every part runs (or is skipped with its reason) and reports 0 in every
failure column. Parts needing PostgreSQL, mosquitto or schemathesis are skipped when they are absent."""

from __future__ import annotations

import shutil

import pytest

from benchmarks import reliability
from benchmarks.cloud_fixtures import postgres_base_url

FAST = "fuzz,isolation,slow-clients,dashboard"


def _check(results: dict, parts: list[str]) -> None:
    assert list(results["parts"]) == parts
    for name in parts:
        part = results["parts"][name]
        assert "error" not in part, part.get("error")
        if "skipped" in part:
            pytest.skip(f"{name}: {part['skipped']}")
        r = part["row"]
        assert isinstance(r["requests sent"], int) and r["requests sent"] > 0, r
        for column in reliability.FAILURE_COLUMNS:
            assert r[column] in (0, "–"), f"{name}: {column} = {r[column]} ({r['note']})"


def test_quick_http_parts_write_the_report(tmp_path):
    md, js = tmp_path / "RELIABILITY.md", tmp_path / "reliability.json"
    results = reliability.main(["--quick", "--seconds", "2", "--parts", FAST, "--md", str(md), "--json", str(js)])
    _check(results, FAST.split(","))
    assert results["parts"]["isolation"]["b_failures"] == 0
    assert results["parts"]["dashboard"]["rows"] >= 5000
    text = md.read_text()
    assert "| part | requests sent | 5xx | lost | duplicated | forged accepted | p99 ms |" in text
    assert "127.0.0.1" in text and js.exists()


@pytest.mark.skipif(shutil.which("mosquitto") is None, reason="the mosquitto binary is not installed")
def test_quick_mqtt_forgeries_are_refused():
    results = reliability.main(["--quick", "--seconds", "2", "--parts", "mqtt"])
    _check(results, ["mqtt"])
    assert results["parts"]["mqtt"]["genuine_clip_stored"]


def test_quick_replicas_and_schemathesis():
    parts = []
    if postgres_base_url()[0] is not None:
        parts.append("replicas")
    if reliability.st_binary() is not None:
        parts.append("schemathesis")
    if not parts:
        pytest.skip("neither PostgreSQL nor schemathesis is available")
    results = reliability.main(["--quick", "--seconds", "4", "--parts", ",".join(parts)])
    _check(results, parts)


@pytest.mark.slow
def test_quick_sigkill_sqlite():
    results = reliability.main(["--quick", "--parts", "sigkill-sqlite"])
    _check(results, ["sigkill-sqlite"])
