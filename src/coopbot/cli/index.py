"""`coopbot ingest`, `reindex` and `search`: fill the index and look into it.

Imports nothing from `coopbot.web`; the index and model libraries only inside the commands.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from coopbot.cli.common import JsonFlag, console, fail, load_settings, print_json
from coopbot.config import Settings, offline
from coopbot.schema import Hit, IngestReport, hit_to_dict, ingest_report_to_dict


def _print_report(report: IngestReport) -> None:
    console.print(
        f"files: {report.files_seen} seen, {report.files_indexed} indexed, {report.files_unchanged} unchanged, "
        f"{report.files_removed} removed, {len(report.skipped)} skipped\n"
        f"chunks: {report.chunks_total} in index from these files; {report.chunks_added} added, "
        f"{report.chunks_updated} updated, {report.chunks_removed} removed, {report.chunks_unchanged} unchanged\n"
        f"time: {report.seconds:.1f} s ({report.chunks_per_second:.1f} chunks/s embedded)",
        highlight=False,
    )
    for skipped in report.skipped:
        console.print(f"[yellow]skipped[/] {skipped.path}: {skipped.reason}", highlight=False)


def run_ingest(settings: Settings, paths: list[Path] | None, prune: bool | None, force: bool) -> IngestReport:
    """Run an ingest with a progress bar; Ctrl-C stops cleanly with the index consistent."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from coopbot.index.chroma import StoreError
    from coopbot.index.embedder import EmbeddingError
    from coopbot.ingest import pipeline

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        tasks = {
            "files": bar.add_task("files", total=None),
            "chunks": bar.add_task("chunks embedded", total=None),
        }

        def progress(stage: str, done: int, total: int) -> None:
            bar.update(tasks[stage], completed=done, total=total)

        try:
            if force:
                return pipeline.reindex(settings, progress=progress)
            return pipeline.ingest(settings, paths, prune=prune, progress=progress)
        except pipeline.NothingIndexedError as exc:
            _print_report(exc.report)
            fail(str(exc))
        except (StoreError, EmbeddingError) as exc:
            fail(str(exc))
        except KeyboardInterrupt:
            fail(
                "interrupted. Every file finished so far is indexed; run the same command again to finish.",
                130,
            )


def ingest_command(
    paths: Annotated[
        list[Path] | None, typer.Argument(help="Files or folders to index (default: the knowledge dir).")
    ] = None,
    prune: Annotated[
        bool | None,
        typer.Option(
            "--prune/--no-prune",
            help="Remove chunks of files deleted from the given folders (default: on for the knowledge dir only).",
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Index documents into Chroma: only new or changed chunks are embedded, deleted files are pruned."""
    offline()
    report = run_ingest(load_settings(), paths or None, prune, force=False)
    print_json(ingest_report_to_dict(report)) if as_json else _print_report(report)


def reindex_command(
    force: Annotated[bool, typer.Option("--force", help="Really delete the collection and rebuild it.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Delete the collection and index the knowledge dir from scratch (after changing the embedding model)."""
    offline()
    settings = load_settings()
    if not force:
        fail(f"this deletes the collection '{settings.index.collection}' and re-embeds every chunk: add --force")
    report = run_ingest(settings, None, None, force=True)
    print_json(ingest_report_to_dict(report)) if as_json else _print_report(report)


def _search(settings: Settings, question: str, k: int) -> list[Hit]:
    from coopbot.index.chroma import StoreError
    from coopbot.index.embedder import EmbeddingError
    from coopbot.retrieval.retriever import Retriever

    try:
        return Retriever(settings).search(question, k)
    except ValueError as exc:
        fail(str(exc))
    except (StoreError, EmbeddingError) as exc:
        fail(str(exc))


def _print_hits(hits: list[Hit]) -> None:
    out = Console(soft_wrap=True)
    for hit in hits:
        chunk = hit.chunk
        out.print(
            f"[bold]{hit.rank}.[/] [cyan]{hit.score:.3f}[/]  {chunk.doc_id}  [dim]{' > '.join(chunk.heading_path)}[/]",
            highlight=False,
        )
        out.print(chunk.text, highlight=False, markup=False)
        out.print()


def search_command(
    question: Annotated[str, typer.Argument(help="The question, in Chinese.")],
    k: Annotated[int, typer.Option("-k", "--top-k", min=1, max=100, help="How many passages.")] = 5,
    as_json: JsonFlag = False,
) -> None:
    """Top-k passages (hybrid search unless COOPBOT_RETRIEVER says otherwise) with scores and heading path."""
    offline()
    settings = load_settings()
    hits = _search(settings, question, k)
    if not hits:
        fail("the index is empty: run `coopbot ingest` first")
    if as_json:
        print_json({"question": question, "hits": [hit_to_dict(h) for h in hits]})
    else:
        _print_hits(hits)


def doctor_command(
    repair: Annotated[
        bool, typer.Option("--repair", help="Rebuild BM25, remove ghost chunks and rewrite documents.json if needed.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Check the index (store, model, chunks, BM25, files, documents.json); exit 1 while a problem remains."""
    offline()
    from coopbot.ingest.doctor import examine

    findings = examine(load_settings(), repair=repair)
    if as_json:
        print_json({"findings": [f.to_dict() for f in findings]})
    else:
        colour = {"ok": "green", "repaired": "yellow", "problem": "red"}
        for finding in findings:
            fix = f"\n    -> {finding.fix}" if finding.status == "problem" and finding.fix else ""
            console.print(f"[{colour[finding.status]}]{finding.status:8}[/] {finding.check}: ", end="", highlight=False)
            console.print(f"{finding.detail}{fix}", markup=False, highlight=False)
    if any(f.status == "problem" for f in findings):
        raise typer.Exit(1)
