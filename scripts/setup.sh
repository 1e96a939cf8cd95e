#!/usr/bin/env bash
# Prepare a virtual environment with coopbot installed. Idempotent: a second run only checks.
#   scripts/setup.sh          runtime only
#   scripts/setup.sh --dev    plus the test and lint tools
# torch is installed first and pinned: 2.13.0 is the CPU build that lies on this machine's disk;
# an unpinned torch would pull a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${COOPBOT_VENV:-.venv}
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3

extras="all"
[ "${1:-}" = "--dev" ] && extras="all,dev"

if [ ! -x "$VENV/bin/python" ]; then
  echo "setup: creating $VENV with $($PYTHON --version)"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
fi
pip_install() { "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "$@"; }
if ! "$VENV/bin/python" -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '2.13.0')" 2>/dev/null; then
  echo "setup: installing torch 2.13.0 (CPU)"
  pip_install torch==2.13.0
fi
echo "setup: installing coopbot[$extras]"
pip_install -e ".[$extras]" torch==2.13.0
echo "setup: done ($VENV)"
