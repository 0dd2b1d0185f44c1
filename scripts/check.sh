#!/usr/bin/env bash
# The checks of README command 2 (and CI): ruff (lint), mypy (types of src/), lint-imports (stages import only
# downwards, no cycles; the contracts are in pyproject.toml) and the whole test suite. Every check runs even
# when an earlier one fails, so one run shows them all; the exit status is non-zero when any failed.
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
check mypy .venv/bin/mypy src
check import-layers .venv/bin/lint-imports
check pytest .venv/bin/python -m pytest

if ((${#failed[@]})); then
  echo "failed: ${failed[*]}"
  exit 1
fi
