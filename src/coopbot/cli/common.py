"""What the commands share: the stderr console, the `--json` flag, the settings, the error exit, JSON output,
and the handler that turns an unusable index into one line instead of a traceback.

Light imports only (typer, rich, config), so `coopbot --help` answers at once. Imports nothing from `coopbot.web`.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

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
    _print_error(message)
    raise typer.Exit(code)


def _print_error(message: str) -> None:
    console.print(f"[bold red]error:[/] {escape(message)}", highlight=False)  # messages may hold [brackets]


@contextlib.contextmanager
def clear_errors() -> Iterator[None]:
    """Around every command: an index that cannot be reached or read (`StoreError`, wherever it is raised)
    becomes one `error:` line saying what is wrong and what to do, and exit 1; never a traceback."""
    from coopbot.index.errors import StoreError  # light: stdlib and config only

    try:
        yield
    except StoreError as exc:  # outside the Typer app: exit by hand
        _print_error(str(exc))
        sys.exit(1)


def print_json(payload: Any) -> None:
    """`payload` as indented UTF-8 JSON on stdout."""
    sys.stdout.write(json.dumps(payload, ensure_ascii=False, indent=2) + "\n")
