"""Reliability suite: the cloud and the edge under hostile input and faults, on 127.0.0.1 only.

    python benchmarks/reliability.py                         # every part, --seconds 60 each
    python benchmarks/reliability.py --seconds 30 --md docs/RELIABILITY.md --json docs/results/reliability.json
    python benchmarks/reliability.py --quick                 # a few seconds per part (used by the tests)
    python benchmarks/reliability.py --parts fuzz,isolation  # some parts only

Every service is started by this script on a free port of 127.0.0.1 (``tinyact cloud serve`` child processes,
a private ``mosquitto`` with the config of ``tinyact cloud broker-config``); nothing else is contacted except
PostgreSQL at ``$TINYACT_TEST_POSTGRES`` or postgresql://postgres@127.0.0.1:5432/test (one fresh schema per
run, dropped afterwards). Parts whose service is missing (PostgreSQL, mosquitto, schemathesis) are reported as
skipped with the reason. Each part is bounded by ``--seconds`` (the SIGKILL part by a clip count derived from it).

Parts (the ``--parts`` names):

* ``schemathesis``: ``st run URL/openapi.json`` (coverage, fuzzing, stateful phases, ``--max-time`` half of
  ``--seconds`` each) with a device key, then with the admin token; requests counted from its NDJSON report.
* ``fuzz``: a seeded structured fuzz of ``POST /v1/clips`` (bad latents, huge values, wrong sizes, bad time
  stamps, bad ids, duplicates in one request and across requests, the same Idempotency-Key with two bodies,
  too many clips, too many cameras, malformed and oversized bodies) from 8 threads.
* ``isolation``: device A posts poison (float32-max latents as JSON lists and as float32 base64, year-1 and
  ``-1`` time stamps) while device B posts good clips into the same micro-batches (20 ms window): B's failures
  (any non-200) and lost clips must be 0.
* ``sigkill-sqlite`` / ``sigkill-postgres``: ``benchmarks/faults.py``'s HTTP scenario (cloud SIGKILLed twice,
  agent SIGKILLed once under load, then drained) on SQLite and on PostgreSQL: lost and duplicated.
* ``replicas``: two services on one PostgreSQL database; every request (same clip ids) is sent to both at once,
  and some again: duplicated rows and lost clips.
* ``mqtt``: a private Mosquitto with the generated per-device ACL and a cloud ingesting from it; anonymous
  clients, device A publishing clips as B, A and anonymous publishing forged results and errors to B's topics,
  A subscribing to ``tinyact/#``, and a forged result against B's edge outbox (``MqttTransport`` +
  ``EdgeStore``): every forgery that is stored, delivered or takes a clip out of the outbox counts as "forged
  accepted". One genuine clip of A must get through (so 0 is not vacuous).
* ``slow-clients``: header-trickling, slow-body and idle connections opened while a device posts single clips:
  the device's p99 and errors (with a quiet baseline).
* ``dashboard``: 100,000 rows (``--quick``: 5,000) posted through the API over 200 cameras on SQLite, then
  ``/v1/dashboard/summary`` and ``/v1/dashboard/latest`` timed.

Columns: requests sent, 5xx, lost, duplicated, forged accepted, p99 ms; the target is 0 for every failure column.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python benchmarks/reliability.py` from the root

from benchmarks.common import console, machine_info, markdown_table, print_table, save_results  # noqa: E402
from benchmarks.reliability_common import (  # noqa: E402
    FAILURE_COLUMNS,
    PARTS,
    Skip,
    row,
)
from benchmarks.reliability_http import (  # noqa: E402
    part_fuzz,
    part_isolation,
    part_replicas,
    part_schemathesis,
    part_sigkill,
    st_binary,
)
from benchmarks.reliability_load import part_dashboard, part_slow_clients  # noqa: E402
from benchmarks.reliability_mqtt import part_mqtt  # noqa: E402

__all__ = ["FAILURE_COLUMNS", "PARTS", "main", "st_binary"]

# ---- main -------------------------------------------------------------------------------------------------
RUNNERS: dict[str, Callable[[Any, Path], dict[str, Any]]] = {
    "schemathesis": part_schemathesis,
    "fuzz": part_fuzz,
    "isolation": part_isolation,
    "sigkill-sqlite": lambda args, work: part_sigkill(args, work, "sqlite"),
    "sigkill-postgres": lambda args, work: part_sigkill(args, work, "postgres"),
    "replicas": part_replicas,
    "mqtt": part_mqtt,
    "slow-clients": part_slow_clients,
    "dashboard": part_dashboard,
}

TITLES = {"schemathesis": "1. schemathesis (OpenAPI)", "fuzz": "2. /v1/clips structured fuzz",
          "isolation": "3. cross-device isolation", "sigkill-sqlite": "4. SIGKILL cloud + edge (SQLite)",
          "sigkill-postgres": "4. SIGKILL cloud + edge (PostgreSQL)", "replicas": "5. two replicas, one PostgreSQL",
          "mqtt": "6. MQTT spoofing / forging", "slow-clients": "7. slow clients", "dashboard": "8. dashboard timings"}

COLUMNS = ("part", "requests sent", "5xx", "lost", "duplicated", "forged accepted", "p99 ms")


def write_markdown(path: Path, results: dict[str, Any]) -> None:
    rows = [[r["row"][c] for c in COLUMNS] for r in results["parts"].values()]
    notes = [f"* **{r['row']['part']}**: {r['row']['note']}" for r in results["parts"].values() if r["row"]["note"]]
    machine = results["machine"]
    failures = [f"{r['row']['part']}: {c} = {r['row'][c]}" for r in results["parts"].values() for c in FAILURE_COLUMNS
                if isinstance(r["row"][c], int) and r["row"][c] > 0]
    text = f"""# Reliability

`benchmarks/reliability.py` attacks the cloud service and the edge on 127.0.0.1 only: every
service is a child process it starts on a free port (and a private Mosquitto with the configuration of
`tinyact cloud broker-config`); PostgreSQL parts use a fresh schema of the local test server. The target is
**0 in every failure column** (5xx, lost, duplicated, forged accepted); "–" means the column does not apply.

{markdown_table(COLUMNS, rows)}

**Failures found: {'none' if not failures else '; '.join(failures)}.**

What each row counts:

{chr(10).join(notes)}

* "requests sent": HTTP requests (schemathesis: counted from its NDJSON report), captured clips (SIGKILL rows),
  or MQTT attempts (logins, publications, sessions). "p99 ms": of the part's device requests (dashboard: the
  slowest of the three views).

Command: `{results['command']}` ({results['settings']['seconds']} s per part{', --quick' if results['settings']['quick'] else ''});
{results['seconds']:.0f} s in all.
Machine: {machine.get('cpu')}, {machine.get('cores')} cores, Python {machine.get('python')}, {machine.get('platform')}
(load average {results['load_at_start'][0]:.2f} at the start). Date: {results['date']}.

The full-size run (the targets: ≥ 40,000 schemathesis requests, 1,000+ clips per SIGKILL run, 100,000
dashboard rows) is `python benchmarks/reliability.py --seconds 300 --md docs/RELIABILITY.md --json
docs/results/reliability.json`: schemathesis sends about {results.get('st_rate', '?')} requests/s here, so 40,000
need about {results.get('st_seconds_for_40k', '?')} s of `--seconds`. Raw numbers: `docs/results/reliability.json`.
"""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0, help="time budget of each part")
    parser.add_argument("--quick", action="store_true", help="a few seconds per part, small data (for the tests)")
    parser.add_argument("--parts", default=",".join(PARTS), help="comma-separated: " + ", ".join(PARTS))
    parser.add_argument("--dashboard-rows", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=19)
    parser.add_argument("--work", type=Path, default=None, help="keep databases and logs here")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--md", type=Path, default=None, help="write the RELIABILITY.md report here")
    args = parser.parse_args(argv)
    if args.quick and "--seconds" not in (argv if argv is not None else sys.argv[1:]):
        args.seconds = 3.0
    wanted = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = sorted(set(wanted) - set(PARTS))
    if unknown:
        parser.error(f"unknown parts {unknown}; choose from {', '.join(PARTS)}")
    keep = args.work is not None
    root = args.work or Path(tempfile.mkdtemp(prefix="tinyact-reliability-"))
    root.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    results: dict[str, Any] = {"settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
                               "load_at_start": os.getloadavg(), "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
                               "parts": {}}
    try:
        for name in wanted:
            console.print(f"[bold]{name}[/] ({args.seconds:g} s)")
            work = root / name
            work.mkdir(parents=True, exist_ok=True)
            part_start = time.monotonic()
            try:
                result = RUNNERS[name](args, work)
            except Skip as why:
                result = {"row": row(TITLES[name], "skipped", note=f"skipped: {why}"), "skipped": str(why)}
            except Exception as error:  # a part that breaks is reported, and the others still run
                import traceback

                result = {"row": row(TITLES[name], "error", note=f"error: {type(error).__name__}: {error}"),
                          "error": traceback.format_exc()}
            result["seconds"] = round(time.monotonic() - part_start, 1)
            results["parts"][name] = result
            console.print(f"  {result['row']}")
    finally:
        if not keep:
            shutil.rmtree(root, ignore_errors=True)
    st = results["parts"].get("schemathesis", {})
    if st.get("runs"):
        spent = sum(r["seconds"] for r in st["runs"])
        rate = sum(r["requests"] for r in st["runs"]) / max(spent, 1e-9)
        results["st_rate"] = round(rate)
        results["st_seconds_for_40k"] = round(40_000 / max(rate, 1e-9))
    results["seconds"] = round(time.monotonic() - started, 1)
    results["machine"] = machine_info()
    results["command"] = "python benchmarks/reliability.py " + " ".join(argv if argv is not None else sys.argv[1:])
    rows = [[r["row"][c] for c in COLUMNS] for r in results["parts"].values()]
    print_table("Reliability (target: 0 in every failure column)", COLUMNS, rows)
    results["table_markdown"] = markdown_table(COLUMNS, rows)
    if args.md is not None:
        write_markdown(args.md, results)
    save_results(args.json, results)
    return results


if __name__ == "__main__":
    main()
