"""`coopbot serve`: hand this process over to the web server, `python -m coopbot.web` (as `python app.py` does).

Imports nothing from `coopbot.web`: the server is another program to this command, and `--host` and `--port`
reach it as the COOPBOT_HOST and COOPBOT_PORT its settings read (`--public` as COOPBOT_SERVER__PUBLIC).
"""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer


def serve_command(
    host: Annotated[str | None, typer.Option("--host", help="Listen address (default: COOPBOT_HOST).")] = None,
    port: Annotated[int | None, typer.Option("--port", help="Listen port (default: COOPBOT_PORT).")] = None,
    public: Annotated[
        bool, typer.Option("--public", help="Allow a network address without API keys: open to everyone.")
    ] = False,
) -> None:
    """Bring the index up to date with the knowledge dir, then serve the web UI, /embed and the HTTP API."""
    options = {"COOPBOT_HOST": host, "COOPBOT_PORT": port, "COOPBOT_SERVER__PUBLIC": "true" if public else None}
    overrides = {name: str(value) for name, value in options.items() if value is not None}
    os.execve(sys.executable, [sys.executable, "-m", "coopbot.web"], {**os.environ, **overrides})
