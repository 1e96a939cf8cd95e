"""What the commands share: the stderr console, the `--json` flag, the settings, the error exit, JSON output.

Light imports only (typer, rich, config), so `coopbot --help` answers at once. Imports nothing from `coopbot.web`.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console

from coopbot.config import Settings

console = Console(stderr=True, soft_wrap=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print the result as JSON (UTF-8) on stdout.")]


def load_settings() -> Settings:
    """The settings, or exit 1 naming what is invalid."""
    try:
        return Settings()
    except Exception as exc:  # pydantic's ValidationError names the field and the problem
        fail(f"invalid settings: {exc}")


def fail(message: str, code: int = 1) -> NoReturn:
    """Print `error: message` on stderr and exit with `code`."""
    console.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code)


def print_json(payload: Any) -> None:
    """`payload` as indented UTF-8 JSON on stdout."""
    sys.stdout.write(json.dumps(payload, ensure_ascii=False, indent=2) + "\n")
