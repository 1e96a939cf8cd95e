"""`coopbot eval`: the evaluation suite (runs the same core users get), its tables and regression gates.

Imports nothing from `coopbot.web`; the evaluation and model libraries only inside the commands.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from coopbot.cli.ask import open_assistant
from coopbot.cli.common import JsonFlag, console, fail, load_settings, print_json
from coopbot.cli.index import run_ingest
from coopbot.config import Settings, offline

if TYPE_CHECKING:
    from coopbot.evals.retrieval import EvalSet

eval_app = typer.Typer(help="Measure retrieval and answers: metrics, reports, regression gates.", no_args_is_help=True)
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
        fail(str(exc), 2)
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

    project = load_settings()
    if not folder.is_dir() or not (folders := find_eval_sets(folder)):
        fail(f"{folder} holds no evaluation set: a set is a folder with corpus.jsonl and queries.jsonl", 2)
    base = project.replace(embedding_model=model_location(project))
    with tempfile.TemporaryDirectory(prefix="coopbot-eval-") as tmp:
        for set_folder in folders:
            try:
                eval_set = load_eval_set(set_folder)
            except EvalSetError as exc:
                fail(str(exc), 2)
            yield eval_set, base, Path(tmp)


@eval_app.command("retrieval")
def eval_retrieval_command(
    folder: Annotated[Path, typer.Argument(help="A set folder (corpus.jsonl + queries.jsonl) or a folder of sets.")],
    retriever: Annotated[str, typer.Option("--retriever", help="bm25, dense, hybrid, or all (side by side).")] = "all",
    as_json: JsonFlag = False,
    thresholds: CheckOption = None,
) -> None:
    """Index each set in a temporary store and report R@1/5/10, MRR@10, nDCG@10 and latency per retriever."""
    offline()

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn
    from rich.table import Table

    from coopbot.evals.retrieval import eval_settings, evaluate_set
    from coopbot.evals.retrieval import retrieval_summary as summarise
    from coopbot.index.embedder import cached_embedder, load_embedder
    from coopbot.retrieval.retriever import MODES

    if retriever != "all" and retriever not in MODES:
        fail(f"unknown retriever {retriever!r}: use one of {', '.join(MODES)} or all", 2)
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
        summaries.append(summarise(result, base.retrieval.retriever))
    if as_json:
        print_json(summaries[0] if len(summaries) == 1 else summaries)
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
    """Ask each question with and without its gold passage, and its near miss (a named thing swapped for one
    the article never mentions): refusals, false refusals, answer in chosen sentences."""
    offline()

    from coopbot.evals.answerability import ask_all, ask_near_misses, measure
    from coopbot.evals.near_miss import near_miss_queries
    from coopbot.evals.retrieval import eval_settings, index_eval_set
    from coopbot.index.embedder import cached_embedder
    from coopbot.retrieval.retriever import Retriever

    figures = {}
    for eval_set, base, tmp in _each_eval_set(folder):
        settings = eval_settings(base, Path(tmp), eval_set.name)
        embedder = cached_embedder(base)
        retriever = Retriever(settings, index=index_eval_set(settings, eval_set, embedder=embedder), embedder=embedder)
        near_misses = near_miss_queries(eval_set)
        asking = f"{eval_set.name}: asking {len(eval_set.queries)} questions twice and {len(near_misses)} near misses"
        with console.status(asking):
            asked = ask_all(eval_set, retriever, embedder, settings)
            asked += ask_near_misses(near_misses, retriever, embedder, settings)
        figures[eval_set.name] = measure(eval_set.name, asked, settings, retriever.lexical.idf).to_dict()
    if as_json:
        print_json(next(iter(figures.values())) if len(figures) == 1 else list(figures.values()))
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
    offline()
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from coopbot.evals import CaseError, load_qa_cases
    from coopbot.evals.qa import run_cases, summary
    from coopbot.evals.report import export_ragas as write_ragas
    from coopbot.evals.report import write_report

    try:
        cases = load_qa_cases(cases_file)
    except (CaseError, OSError) as exc:
        fail(str(exc), 2)
    if kinds:
        wanted = {k.strip() for k in kinds.split(",") if k.strip()}
        cases = [c for c in cases if c.kind in wanted]
    cases = cases[:limit] if limit else cases
    if not cases:
        fail(f"no cases to run in {cases_file} (check --kinds / --limit)", 2)
    settings = load_settings()
    run_ingest(settings, None, None, force=False)  # measure the knowledge base as it is now
    assistant = open_assistant(settings)
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
        print_json(figures)
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
        fail(str(exc), 2)
    if as_json:
        print_json(
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
