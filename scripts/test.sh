#!/usr/bin/env bash
# One command from a fresh clone to the whole test suite: install with the dev tools, lint,
# type-check, then every test (slow ones included: the real model, real Chroma, a real server).
# Extra arguments go to pytest, e.g. scripts/test.sh -m "not slow" for a quick loop.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 GRADIO_ANALYTICS_ENABLED=False ANONYMIZED_TELEMETRY=False
stage() { echo "test.sh: $1 took $((SECONDS - started)) s"; started=$SECONDS; }
started=$SECONDS
scripts/setup.sh --dev
stage "setup"
VENV=${COOPBOT_VENV:-.venv}
"$VENV/bin/ruff" check src tests benchmarks
"$VENV/bin/ruff" format --check src tests benchmarks
"$VENV/bin/mypy"
stage "lint and type check"
status=0
"$VENV/bin/pytest" "$@" || status=$?
stage "pytest"
exit "$status"
