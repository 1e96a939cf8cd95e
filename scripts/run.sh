#!/usr/bin/env bash
# One command from a fresh clone to a working assistant: install, prepare the bundled embedding
# model and the offline answer model (COOPBOT_LLM=extractive: none, a quick start), then app.py:
# index knowledge/ (incremental) and chat in the terminal.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 GRADIO_ANALYTICS_ENABLED=False ANONYMIZED_TELEMETRY=False
scripts/setup.sh
VENV=${COOPBOT_VENV:-.venv}
if [ "${COOPBOT_LLM:-}" = "extractive" ]; then
  "$VENV/bin/coopbot" model prepare
else
  "$VENV/bin/coopbot" model prepare --llm  # also assemble and verify the offline answer model (about 10 s)
fi
exec "$VENV/bin/python" app.py
