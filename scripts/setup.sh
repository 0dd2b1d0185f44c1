#!/usr/bin/env bash
# Create .venv, install the CPU build of torch first (so nothing pulls a CUDA build), then TinyAct.
#   scripts/setup.sh          every role on one machine: edge, cloud, training (README command 1, the demo)
#   scripts/setup.sh --dev    plus PostgreSQL and Hugging Face support, test and style tools and, where apt
#                             can, Chromium for the browser tests (command 2, .ci/run)
# A device that only runs the edge agent needs just `pip install "tinyact[edge]"` (README, Install).
set -euo pipefail
cd "$(dirname "$0")/.."

dev=0
[[ "${1:-}" == "--dev" ]] && dev=1
python=${PYTHON:-python3}

if [[ ! -x .venv/bin/python ]]; then
  "$python" -m venv .venv
fi
# Without --dev, --no-compile: byte-compiling every module of torch, scipy, xgboost … took ~45 s of the demo's ~90 s
# set-up, and Python compiles the modules it imports on first use. The test suite imports far more, in many
# processes, so --dev compiles everything once, here.
extras="edge,cloud,train" compile="--no-compile"
[[ $dev == 1 ]] && extras="dev" compile="--compile"
pip() {
  # This machine's pip config lists a local index folder that may be absent; hide that one warning only.
  .venv/bin/python -m pip install --quiet "$compile" --disable-pip-version-check "$@" 2>&1 \
    | { grep -v "is ignored: it is neither" || true; }
}

# The CPU build of torch: a local wheel where pip's config provides one (--no-index: no download; this
# machine's find-links), else PyTorch's CPU index (a plain PyPI install would pull the multi-GB CUDA build).
if pip --no-index --no-deps "torch==2.13.0"; then
  pip "torch==2.13.0" -e ".[$extras]"  # torch's dependencies, from the configured index, with TinyAct's
else
  echo "no local torch wheel: installing the CPU build from https://download.pytorch.org/whl/cpu"
  pip "torch==2.13.0" --index-url https://download.pytorch.org/whl/cpu
  pip -e ".[$extras]"
fi
# Browser tests drive Debian's Chromium with Playwright; never let Playwright download a browser.
if [[ $dev == 1 ]] && ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 \
    && [[ $(id -u) == 0 ]]; then
  (apt-get install -y -qq chromium >/dev/null 2>&1 \
    || (apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq chromium >/dev/null 2>&1)) \
    || echo "note: could not install chromium; browser tests will be skipped"
fi
echo "TinyAct installed in $(pwd)/.venv"
