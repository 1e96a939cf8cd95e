#!/usr/bin/env bash
# One command from a fresh clone to a working assistant: install, prepare the bundled embedding
# model, then app.py: index knowledge/ (incremental) and chat in the terminal.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 GRADIO_ANALYTICS_ENABLED=False ANONYMIZED_TELEMETRY=False
scripts/setup.sh
VENV=${COOPBOT_VENV:-.venv}
"$VENV/bin/coopbot" model prepare
exec "$VENV/bin/python" app.py
