"""The `coopbot` command: the Typer app, every command registered in the order `--help` lists them.

Commands translate arguments and print; the work lives in the core. Heavy libraries (torch,
sentence-transformers, chromadb) are imported inside the commands, so `coopbot --help` answers at once.
"""

from __future__ import annotations

import typer

from coopbot.cli.ask import ask_command, chat_command
from coopbot.cli.common import clear_errors
from coopbot.cli.eval import eval_app
from coopbot.cli.index import doctor_command, ingest_command, reindex_command, search_command
from coopbot.cli.model import model_app
from coopbot.cli.serve import serve_command

app = typer.Typer(
    help="coopbot: a Chinese knowledge assistant over the documents in knowledge/, offline.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.command("ingest")(ingest_command)
app.command("reindex")(reindex_command)
app.command("search")(search_command)
app.command("doctor")(doctor_command)
app.command("ask")(ask_command)
app.command("chat")(chat_command)
app.command("serve")(serve_command)
app.add_typer(model_app, name="model")
app.add_typer(eval_app, name="eval")


def main() -> None:
    """Console-script entry point."""
    with clear_errors():
        app()
