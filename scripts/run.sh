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
  # also assemble and verify the offline answer model, and check it answers on this machine (about 20 s); if it
  # does not (a llama.cpp build this CPU refuses), the app still starts: COOPBOT_LLM=auto then quotes instead
  "$VENV/bin/coopbot" model prepare --llm ||
    echo "run.sh: the local answer model is not usable here (see above); serving extractive answers" >&2
fi
exec "$VENV/bin/python" app.py
