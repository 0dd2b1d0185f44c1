#!/usr/bin/env bash
# The checks of README command 2 (and CI): ruff (lint), mypy (types of src/ and benchmarks/, the benchmarks typed
# against the package they call), lint-imports (stages import only downwards, no cycles; the contracts are in
# pyproject.toml) and the whole test suite. Every check runs even when an earlier one fails, so one run shows them
# all; the exit status is non-zero when any failed.
set -uo pipefail
cd "$(dirname "$0")/.."

failed=()
check() {
  local name=$1
  shift
  echo "== $name: $*"
  "$@" || failed+=("$name")
}
check ruff .venv/bin/ruff check src tests benchmarks
check mypy .venv/bin/mypy src benchmarks
check import-layers .venv/bin/lint-imports
# Two pytest-xdist workers: run one after another, the tests kept one of two cores busy on average (many wait on
# servers, subprocesses or sockets); two workers took the suite from 13 to 6.5 min on a 2-core EPYC.
# TINYACT_TEST_WORKERS=0 runs it in one process.
check pytest .venv/bin/python -m pytest -n "${TINYACT_TEST_WORKERS:-2}"

if ((${#failed[@]})); then
  echo "failed: ${failed[*]}"
  exit 1
fi
