"""Evaluation reports: results.jsonl, summary.json, report.md and a self-contained report.html.

A report folder is also what `coopbot eval compare A B` reads, so two runs (before and after a change)
can be put side by side. The HTML embeds its plots as PNG data (matplotlib, Agg backend): it opens
offline, from a mail attachment or a CI artifact, with nothing else beside it.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coopbot.evals.qa import LOWER_IS_BETTER, METRICS, CaseResult

RESULTS_FILE = "results.jsonl"
SUMMARY_FILE = "summary.json"


class ReportError(ValueError):
    """A folder is not a report written by `coopbot eval qa --report`."""


def write_report(folder: Path, results: Sequence[CaseResult], summary: dict[str, Any]) -> list[Path]:
    """Write every report file into `folder` (created if needed); returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / RESULTS_FILE, folder / SUMMARY_FILE, folder / "report.md", folder / "report.html"]
    paths[0].write_text("".join(json.dumps(r.to_dict(), ensure_ascii=False) + "\n" for r in results), encoding="utf-8")
    paths[1].write_text(json.dumps(summary, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    paths[2].write_text(markdown_report(results, summary), encoding="utf-8")
    paths[3].write_text(html_report(results, summary), encoding="utf-8")
    return paths


def _cell(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def _metric_rows(summary: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [("overall", summary["overall"]), *sorted(summary["by_kind"].items())]


def markdown_report(results: Sequence[CaseResult], summary: dict[str, Any]) -> str:
    """A readable summary for a pull request or a terminal: metrics per kind, then the failing cases."""
    lines = [
        f"# coopbot QA evaluation ({summary['cases']} cases, backend `{summary['backend']}`)",
        "",
        "| group | cases | " + " | ".join(METRICS) + " | p50 ms | p95 ms |",
        "|---" * (len(METRICS) + 4) + "|",
    ]
    for name, row in _metric_rows(summary):
        cells = " | ".join(_cell(row[m]) for m in METRICS)
        lines.append(f"| {name} | {row['cases']} | {cells} | {row['latency_ms']['p50']} | {row['latency_ms']['p95']} |")
    failing = [r for r in results if not r.passed]
    lines += ["", f"## Cases that did not pass ({len(failing)})", ""]
    for r in failing:
        what = "refused" if r.refused else r.answer.text.replace("\n", " ")[:160]
        lines.append(f"- `{r.case.id}` ({r.case.kind}) {r.case.question} → {what}")
    return "\n".join(lines) + "\n"


def _png(figure: Any) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def refusal_tradeoff(results: Sequence[CaseResult]) -> list[tuple[float, float, float]]:
    """The refusal gate's threshold sweep: (threshold, false_refusal_rate, refusal_accuracy), threshold ascending.

    A case is refused when its answerability is below the threshold. The thresholds are every distinct
    answerability observed, then infinity (refuse all), so the points run from (0, 0) to (1, 1); cases that
    tie move together. Cases without an answerability are left out; empty unless at least one answerable and
    one unanswerable case remain.
    """
    answerable = [r.answerability for r in results if r.answerability is not None and r.case.answerable]
    unanswerable = [r.answerability for r in results if r.answerability is not None and not r.case.answerable]
    if not answerable or not unanswerable:
        return []
    points = []
    for threshold in [*sorted({*answerable, *unanswerable}), math.inf]:
        false_refusals = sum(a < threshold for a in answerable)
        refusals = sum(a < threshold for a in unanswerable)
        points.append((threshold, false_refusals / len(answerable), refusals / len(unanswerable)))
    return points


def plots(results: Sequence[CaseResult], summary: dict[str, Any]) -> dict[str, str]:
    """Base64 PNGs: metrics per kind (grouped bars), a latency histogram and, when the refusal gate scored
    both answerable and unanswerable cases, the refusal trade-off (key "refusal")."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = _metric_rows(summary)
    figure, axes = plt.subplots(figsize=(11, 4.2))
    width = 0.8 / len(METRICS)
    for i, metric in enumerate(METRICS):
        values = [row[metric] if row[metric] is not None else 0.0 for _, row in rows]
        positions = [x + (i - (len(METRICS) - 1) / 2) * width for x in range(len(rows))]
        axes.bar(positions, values, width, label=metric + (" (lower is better)" if metric in LOWER_IS_BETTER else ""))
    axes.set_xticks(range(len(rows)), [name for name, _ in rows])
    axes.set_ylim(0, 1.05)
    axes.set_ylabel("fraction")
    axes.set_title("Metrics per kind of question")
    axes.legend(fontsize=8, ncols=3, loc="upper center", bbox_to_anchor=(0.5, -0.1))
    metric_png = _png(figure)
    plt.close(figure)

    figure, axes = plt.subplots(figsize=(7, 3.2))
    axes.hist([r.seconds * 1000 for r in results], bins=20, color="#4a7ab5")
    axes.set_xlabel("latency per case (ms)")
    axes.set_ylabel("cases")
    axes.set_title(
        f"Latency: p50 {summary['overall']['latency_ms']['p50']} ms, p95 {summary['overall']['latency_ms']['p95']} ms"
    )
    latency_png = _png(figure)
    plt.close(figure)
    images = {"metrics": metric_png, "latency": latency_png}

    curve = refusal_tradeoff(results)
    if curve:
        figure, axes = plt.subplots(figsize=(6, 4.2))
        axes.plot([x for _, x, _ in curve], [y for _, _, y in curve], color="#4a7ab5", label="threshold sweep")
        axes.axvline(0.05, color="grey", linestyle="--", linewidth=1, label="5 % false refusals")
        overall = summary["overall"]
        if overall["false_refusal_rate"] is not None and overall["refusal_accuracy"] is not None:
            measured = (overall["false_refusal_rate"], overall["refusal_accuracy"])
            axes.plot(*measured, "o", color="#c0392b", label=f"this run ({measured[0]:.3f}, {measured[1]:.3f})")
        axes.set_xlim(-0.02, 1.02)
        axes.set_ylim(0, 1.05)
        axes.set_xlabel("false-refusal rate (answerable cases refused)")
        axes.set_ylabel("refusal accuracy (unanswerable cases refused)")
        axes.set_title("Refusal trade-off: refuse when answerability < threshold")
        axes.legend(fontsize=8, loc="lower right")
        images["refusal"] = _png(figure)
        plt.close(figure)
    return images


_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1200px;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:13px}td,th{border:1px solid #ccc;padding:4px 6px;text-align:right}
th{max-width:95px;overflow-wrap:anywhere;vertical-align:bottom}
td.text,th.text{text-align:left;max-width:520px}tr.fail{background:#fff0f0}img{max-width:100%}
"""


_ALT = {"metrics": "metrics per kind", "latency": "latency histogram", "refusal": "refusal trade-off"}


def html_report(results: Sequence[CaseResult], summary: dict[str, Any]) -> str:
    """One HTML file with the metric table, the plots and every case; all text escaped."""
    esc = html.escape
    images = plots(results, summary)
    head = "".join(f"<th>{esc(m.replace('_', ' '))}</th>" for m in METRICS)
    table = [f"<table><tr><th class=text>group</th><th>cases</th>{head}<th>p50 ms</th><th>p95 ms</th></tr>"]
    for name, row in _metric_rows(summary):
        cells = "".join(f"<td>{_cell(row[m])}</td>" for m in METRICS)
        latency = row["latency_ms"]
        table.append(
            f"<tr><td class=text>{esc(name)}</td><td>{row['cases']}</td>{cells}"
            f"<td>{latency['p50']}</td><td>{latency['p95']}</td></tr>"
        )
    table.append("</table>")
    cases = [
        "<table><tr><th class=text>case</th><th class=text>question</th><th class=text>answer</th><th>ms</th></tr>"
    ]
    for r in results:
        answer = "（拒答）" + r.answer.text if r.refused else r.answer.text
        cases.append(
            f"<tr class={'pass' if r.passed else 'fail'}><td class=text>{esc(r.case.id)}<br>{esc(r.case.kind)}"
            f"<br>{'pass' if r.passed else 'FAIL'}</td><td class=text>{esc(r.case.question)}</td>"
            f"<td class=text>{esc(answer)}</td><td>{r.seconds * 1000:.0f}</td></tr>"
        )
    cases.append("</table>")
    figures = "".join(f"<img alt='{_ALT[name]}' src='data:image/png;base64,{png}'>" for name, png in images.items())
    title = f"coopbot QA evaluation: {summary['cases']} cases, backend {summary['backend']}"
    return (
        f"<!doctype html><html lang=zh><head><meta charset=utf-8><title>{esc(title)}</title>"
        f"<style>{_STYLE}</style></head><body><h1>{esc(title)}</h1>{''.join(table)}"
        f"{figures}<h2>Cases</h2>{''.join(cases)}</body></html>\n"
    )


def export_ragas(path: Path, results: Sequence[CaseResult]) -> None:
    """JSONL in RAGAS's column layout: question, answer, contexts (cited passages, else retrieved), ground truth."""
    with path.open("w", encoding="utf-8") as out:
        for r in results:
            contexts = [c.passage for c in r.answer.citations] or [h.chunk.text for h in r.answer.related]
            row = {
                "question": r.case.question,
                "answer": r.answer.text,
                "contexts": contexts,
                "ground_truth": "；".join(g.quote for g in r.case.gold) or "知识库中没有这个问题的答案。",
                "ground_truths": [g.quote for g in r.case.gold],
                "user_input": r.case.question,
                "response": r.answer.text,
                "retrieved_contexts": contexts,
                "reference": "；".join(g.quote for g in r.case.gold),
            }
            out.write(json.dumps(row, ensure_ascii=False) + "\n")


@dataclass
class Comparison:
    """What changed between two report folders."""

    metrics: list[tuple[str, str, float | None, float | None]]  # (group, metric, before, after)
    changed: list[tuple[str, str, str]]  # (case id, before, after) where the case's verdict or answer changed


def _load(folder: Path) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    summary_path, results_path = folder / SUMMARY_FILE, folder / RESULTS_FILE
    if not summary_path.is_file() or not results_path.is_file():
        raise ReportError(
            f"{folder} has no {SUMMARY_FILE} and {RESULTS_FILE}: write one with `coopbot eval qa --report`"
        )
    summary = json.loads(summary_path.read_text(encoding="utf-8"))
    rows = [json.loads(line) for line in results_path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return summary, {row["id"]: row for row in rows}


def _verdict(row: dict[str, Any] | None) -> str:
    if row is None:
        return "absent"
    scores = row["scores"]
    state = "pass" if scores["passed"] else "fail"
    return f"{state}, {'refused' if scores['refused'] else 'answered'}, {len(scores['points_found'])} points"


def compare(before: Path, after: Path) -> Comparison:
    """Metric differences per group, and the cases whose verdict or answer text changed."""
    summary_a, rows_a = _load(before)
    summary_b, rows_b = _load(after)
    groups_a, groups_b = dict(_metric_rows(summary_a)), dict(_metric_rows(summary_b))
    deltas = []
    for group in dict.fromkeys([*groups_a, *groups_b]):
        for metric in (*METRICS, "latency_p50_ms"):
            values = []
            for groups in (groups_a, groups_b):
                row = groups.get(group)
                values.append(
                    None if row is None else row["latency_ms"]["p50"] if metric == "latency_p50_ms" else row[metric]
                )
            if values[0] != values[1]:
                deltas.append((group, metric, values[0], values[1]))
    changed = []
    for case_id in dict.fromkeys([*rows_a, *rows_b]):
        a, b = rows_a.get(case_id), rows_b.get(case_id)
        text_a = a["answer"]["text"] if a else None
        text_b = b["answer"]["text"] if b else None
        if _verdict(a) != _verdict(b) or text_a != text_b:
            changed.append((case_id, _verdict(a), _verdict(b)))
    return Comparison(deltas, changed)
