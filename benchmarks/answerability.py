"""Fit the answer-sentence model and the answerability gate on drcd-test; check them on the other sets.

    .venv/bin/python benchmarks/answerability.py [--datasets DIR] [--fit drcd-test] [--write [--output F]] [--json]
        [--fit-near-misses] [--name-features]

The packaged models: the default (`answer.gate = balanced`) with no option; `answer.gate = strict` with
`--fit-near-misses --name-features --write --output src/coopbot/data/answerability-strict.json`.

Every set under DIR (default ../shared/datasets, read in place) is indexed as `coopbot eval retrieval`
does, and each question is asked through the production retriever and sentence features twice: over
the whole corpus and with its gold passages left out (`coopbot.evals.answerability`). On the fitting
set only:
- the sentence model: logistic regression, one row per sentence of the passages the answerer reads,
  label "the sentence holds an answer string";
- the gate: logistic regression over `GATE_FEATURES`, label answerable (1) against must-refuse (0):
  left-out questions whose answer is gone from the passages read; left-out questions whose answer is
  still there are left out of the fit (their label is unknown). Near misses (the question with a year,
  place, person or organisation swapped for one its article never mentions, `near_miss.py`; at most
  NEAR_MISSES per set) are always asked and measured, and join the fit with `--fit-near-misses`;
  `--name-features` adds `NAME_FEATURES` (issue 12's note has what both do);
- the threshold: the 5th percentile of the gate's probabilities on the fitting set's answerable
  questions (5 % false refusals there); 5-fold cross-validation by article reports the in-set figures;
- the sentence choice settings (`answer_relative_score`, `answer_neighbour_score`) from a small grid,
  by answer-in-chosen-sentences with at most 2.0 sentences quoted on average.
Then every other set is measured with the fitted values, untouched. `--write` stores the models with
their provenance in src/coopbot/data/answerability.json. Asks are cached per set under
.coopbot/cache/answerability/ (delete it after changing retrieval or features).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import pickle
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from coopbot.config import offline

if TYPE_CHECKING:
    from coopbot.answering.model import LogisticModel
    from coopbot.config import Settings
    from coopbot.evals.answerability import Asked
    from coopbot.evals.retrieval import Query

offline()

ROOT = Path(__file__).resolve().parents[1]
OUTPUT = ROOT / "src" / "coopbot" / "data" / "answerability.json"
STRICT = OUTPUT.with_name("answerability-strict.json")
FALSE_REFUSALS = 0.05
CHOICE_GRID = {"answer_relative_score": (1.01, 0.7, 0.5, 0.3), "answer_neighbour_score": (1.01, 0.5, 0.2, 0.1, 0.0)}
MAX_MEAN_SENTENCES = 2.0
PART = 250  # questions asked between two saves of the cache
# Cached asks hold the retrieval and the cosines; bump this when retrieval or the cosine features change
# (text features are recomputed on every run).
RETRIEVAL_VERSION = "1"
NEAR_MISS_VERSION = "3"  # bump when near_miss.py makes other questions
NEAR_MISSES = 1500  # per set, drawn at random (seeded): enough to fit on, bounded in time
RETRIEVAL_SETTINGS = {
    "index": {"embedding_model", "encoder", "query_prefix", "passage_prefix", "bm25_k1", "bm25_b"},
    "retrieval": {"retriever", "candidates", "fusion_lexical_weight", "dedup_jaccard"},
    "answer": {"top_k", "passages", "min_sentence_chars"},
}


def in_parts(cache: Path, queries: list[Query], ask: Callable[[list[Query]], list[Asked]]) -> list[Asked]:
    """`ask(queries)`, PART questions at a time, each part saved as it is done (`*.partial.pkl`): drcd-test
    takes hours on two cores, and an interrupted run goes on where it stopped. Cached whole at the end."""
    if cache.is_file():
        done: list[Asked] = pickle.loads(cache.read_bytes())
        return done
    partial = cache.with_name(f"{cache.stem}.partial.pkl")
    parts: list[list[Asked]] = pickle.loads(partial.read_bytes()) if partial.is_file() else []
    cache.parent.mkdir(parents=True, exist_ok=True)
    for start in range(len(parts) * PART, len(queries), PART):
        print(f"  part {start // PART + 1} of {-(-len(queries) // PART)} ({cache.stem})", file=sys.stderr)
        parts.append(ask(queries[start : start + PART]))
        partial.write_bytes(pickle.dumps(parts))
    asked = [a for part in parts for a in part]
    cache.write_bytes(pickle.dumps(asked))
    partial.unlink(missing_ok=True)
    return asked


def collect(folder: Path, base: Settings, tmp: Path) -> tuple[list[Asked], Any]:
    """The set's asks (cached on disk by the set's files and settings) and its rarity function."""
    from coopbot.evals.answerability import ask_all, ask_near_misses
    from coopbot.evals.near_miss import near_miss_queries
    from coopbot.evals.retrieval import eval_settings, index_eval_set, load_eval_set, passage_chunk
    from coopbot.index.bm25 import LexicalIndex
    from coopbot.index.embedder import cached_embedder
    from coopbot.retrieval.retriever import Retriever

    eval_set = load_eval_set(folder)
    files = b"".join((folder / n).read_bytes() for n in ("corpus.jsonl", "queries.jsonl"))
    retrieval = base.model_dump_json(include=RETRIEVAL_SETTINGS)
    key = hashlib.sha256(files + RETRIEVAL_VERSION.encode() + retrieval.encode()).hexdigest()[:16]
    cache = base.data_dir / "cache" / "answerability" / f"{eval_set.name}-{key}.pkl"
    near_cache = cache.with_name(f"{cache.stem}-near{NEAR_MISS_VERSION}-{NEAR_MISSES}.pkl")
    retriever: Retriever | None = None
    embedder = cached_embedder(base)  # the project's vector cache: a second run encodes nothing
    settings = eval_settings(base, tmp, eval_set.name)
    begin = time.perf_counter()

    def progress(done: int, total: int) -> None:
        if done % 200 == 0 or done == total:
            print(f"  [{eval_set.name}] {done}/{total} ({time.perf_counter() - begin:.0f} s)", file=sys.stderr)

    def open_retriever() -> Retriever:
        nonlocal retriever
        if retriever is None:
            index = index_eval_set(settings, eval_set, embedder=embedder)
            retriever = Retriever(settings, index=index, embedder=embedder)
        return retriever

    def whole(queries: list[Query]) -> list[Asked]:
        return ask_all(dataclasses.replace(eval_set, queries=queries), open_retriever(), embedder, settings, progress)

    def near_misses(queries: list[Query]) -> list[Asked]:
        return ask_near_misses(queries, open_retriever(), embedder, settings, progress)

    made = near_miss_queries(eval_set)
    made = random.Random(0).sample(made, min(NEAR_MISSES, len(made)))
    asked = in_parts(cache, eval_set.queries, whole) + in_parts(near_cache, made, near_misses)
    # the rarities come from the same lexical index the retriever builds
    lexical = LexicalIndex(None, k1=base.index.bm25_k1, b=base.index.bm25_b)
    lexical.update({p.id: passage_chunk(p, eval_set.name).chunk.embed_text for p in eval_set.passages})
    lexical.prepare()
    refresh_text_features(asked, lexical.idf)
    return asked, lexical.idf


def refresh_text_features(asked: list[Asked], rarity: Any) -> None:
    """Recompute the text-only sentence features of cached asks with today's code (the cosines stay)."""
    from coopbot.answering.extractive import AskedText, text_features
    from coopbot.text.sentences import split_sentences

    for a in asked:
        asking = AskedText.of(a.query.question, a.query.question, rarity)
        spans = {id(h): split_sentences(h.chunk.text) for h, _, _, _ in a.sentences}
        for hit, start, _, values in a.sentences:
            sentences = spans[id(hit)]
            at = next(i for i, span in enumerate(sentences) if span[0] == start)
            values.update(text_features(asking, hit.chunk.text, sentences, at))


@dataclasses.dataclass(frozen=True)
class GateRecipe:
    """What the gate is fitted with beyond the default: near misses as negatives, the name features."""

    near_misses: bool = False
    name_features: bool = False

    @property
    def features(self) -> tuple[str, ...]:
        from coopbot.answering.gate import GATE_FEATURES, NAME_FEATURES

        return GATE_FEATURES + NAME_FEATURES if self.name_features else GATE_FEATURES


def fit(asked: list[Asked], rarity: Any, recipe: GateRecipe) -> dict[str, LogisticModel]:
    """Sentence model, gate and threshold from one set's asks (see the module docstring)."""
    from coopbot.answering.extractive import SENTENCE_FEATURES
    from coopbot.answering.model import fit_logistic
    from coopbot.evals.answerability import gate_rows

    rows, labels = [], []
    for a in asked:
        if a.answerable:
            rows += [[v[name] for name in SENTENCE_FEATURES] for _, _, _, v in a.sentences]
            labels += a.sentence_labels()
    sentence = fit_logistic(np.asarray(rows), np.asarray(labels, dtype=float), SENTENCE_FEATURES)
    used = [a for a in asked if a.answerable or (a.must_refuse and (recipe.near_misses or not a.near_miss))]
    x = gate_rows(used, sentence, rarity, recipe.features)
    y = np.asarray([a.answerable for a in used], dtype=float)
    gate = fit_logistic(x, y, recipe.features)
    answerable_scores = gate.probabilities(x[y == 1])
    threshold = float(np.quantile(answerable_scores, FALSE_REFUSALS))
    return {"sentence": sentence, "answerability": dataclasses.replace(gate, threshold=threshold)}


def cross_validate(
    asked: list[Asked], rarity: Any, settings: Settings, recipe: GateRecipe, folds: int = 5
) -> dict[str, float]:
    """Fit on 4/5 of the articles, measure on the rest; the mean over folds."""
    from coopbot.evals.answerability import measure

    article = {a.query.id: a.query.gold_ids[0].split("-")[0] for a in asked}
    names = sorted(set(article.values()))
    figures: list[dict[str, Any]] = []
    for fold in range(folds):
        held = {n for i, n in enumerate(names) if i % folds == fold}
        train = [a for a in asked if article[a.query.id] not in held]
        test = [a for a in asked if article[a.query.id] in held]
        figures.append(measure(f"fold{fold}", test, settings, rarity, fit(train, rarity, recipe)).to_dict())
    keys = ("auc", "false_refusal_rate", "refusal_accuracy", "answer_in_chosen", "answer_in_best")
    return {k: round(statistics.fmean(f[k] for f in figures), 4) for k in keys}


def choose_settings(asked: list[Asked], models: dict[str, LogisticModel], settings: Settings) -> dict[str, float]:
    """The grid point with the most answers in the chosen sentences, quoting at most 2 sentences on average."""
    from coopbot.answering.extractive import choose_sentences

    reachable = [(a, a.scored(models["sentence"])) for a in asked if a.answerable and a.answer_present]
    best: tuple[float, dict[str, float]] = (-1.0, {})
    for relative in CHOICE_GRID["answer_relative_score"]:
        for neighbour in CHOICE_GRID["answer_neighbour_score"]:
            trial = settings.replace(answer_relative_score=relative, answer_neighbour_score=neighbour)
            found = sentences = 0
            for a, ranked in reachable:
                chosen = choose_sentences(a.query.question, ranked, trial.answer)
                found += a.holds_answer("".join(c.text for c in chosen))
                sentences += len(chosen)
            share, mean = found / len(reachable), sentences / len(reachable)
            print(
                f"  choice relative={relative} neighbour={neighbour}: answer in chosen {share:.3f}, "
                f"{mean:.2f} sentences",
                file=sys.stderr,
            )
            if mean <= MAX_MEAN_SENTENCES and share > best[0]:
                best = (share, {"answer_relative_score": relative, "answer_neighbour_score": neighbour})
    return best[1]


def hand_rules(
    asked: list[Asked], models: dict[str, LogisticModel], settings: Settings, rarity: Any
) -> dict[str, float]:
    """What two hand rules would add to the fitted gate, measured rather than assumed: among the questions
    the gate lets through, the share each rule would refuse, answerable (a cost) and must-refuse (a gain).

    - kind: the question asks for a date, person, place or amount and the chosen sentences hold none;
    - names: a year, place, person or organisation the question names is in none of the top three passages.
    """
    from coopbot.answering.extractive import choose_sentences
    from coopbot.answering.gate import missing_names
    from coopbot.answering.kinds import asked_kinds, holds_asked_kind
    from coopbot.evals.answerability import gate_rows

    gate = models["answerability"]
    scores = gate.probabilities(gate_rows(asked, models["sentence"], rarity, gate.features))
    counts = {"answerable": 0, "must_refuse": 0}
    refused = {f"{rule}_{group}": 0 for rule in ("kind", "names") for group in counts}
    for a, score in zip(asked, scores, strict=True):
        if not a.answerable and not a.must_refuse:
            continue
        group = "answerable" if a.answerable else "must_refuse"
        counts[group] += 1
        if score < gate.threshold:
            continue
        chosen = "".join(
            c.text for c in choose_sentences(a.query.question, a.scored(models["sentence"]), settings.answer)
        )
        kinds = asked_kinds(a.query.question)
        refused[f"kind_{group}"] += bool(kinds) and not holds_asked_kind(kinds, chosen)
        refused[f"names_{group}"] += bool(missing_names(a.query.question, a.hits[:3]))
    return {name: round(n / max(counts[name.split("_", 1)[1]], 1), 4) for name, n in refused.items()}


def main() -> None:
    from coopbot.config import Settings
    from coopbot.evals.answerability import measure
    from coopbot.evals.retrieval import find_eval_sets
    from coopbot.index.embedder import model_location

    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--datasets", type=Path, default=ROOT.parent / "shared" / "datasets")
    parser.add_argument("--fit", default="drcd-test", help="the set to fit on (the others are only measured)")
    parser.add_argument("--write", action="store_true", help="store the fitted models in --output")
    parser.add_argument(
        "--output",
        type=Path,
        default=OUTPUT,
        help=f"default {OUTPUT.relative_to(ROOT)}; the `answer.gate = strict` model is {STRICT.relative_to(ROOT)} "
        "(fitted with --fit-near-misses --name-features)",
    )
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--fit-near-misses", action="store_true", help="near misses as negatives in the gate's fit")
    parser.add_argument("--name-features", action="store_true", help="the gate also reads NAME_FEATURES")
    args = parser.parse_args()
    recipe = GateRecipe(args.fit_near_misses, args.name_features)

    project = Settings()
    base = project.replace(embedding_model=model_location(project))
    folders = {f.name: f for f in find_eval_sets(args.datasets)}
    if args.fit not in folders:
        sys.exit(f"no set {args.fit!r} under {args.datasets}")
    with tempfile.TemporaryDirectory(prefix="coopbot-answerability-") as tmp:
        collected = {name: collect(folder, base, Path(tmp)) for name, folder in folders.items()}
    asked, rarity = collected[args.fit]
    models = fit(asked, rarity, recipe)
    chosen = choose_settings(asked, models, base)
    settings = base.replace(**chosen)
    report: dict[str, Any] = {"fitted_on": args.fit, "sentence_choice": chosen}
    report["cross_validation"] = cross_validate(asked, rarity, settings, recipe)
    report["sets"] = {name: measure(name, a, settings, r, models).to_dict() for name, (a, r) in collected.items()}
    report["hand_rules"] = {name: hand_rules(a, models, settings, r) for name, (a, r) in collected.items()}
    provenance = {
        "fitted_on": f"../shared/datasets/{args.fit} ({sum(a.answerable for a in asked)} questions, "
        + (
            f"leave-gold-out and {sum(a.near_miss for a in asked)} near-miss negatives)"
            if recipe.near_misses
            else "leave-gold-out negatives)"
        ),
        "method": "benchmarks/answerability.py: L2 logistic regression (l2=1) on standardised features; "
        f"threshold = {FALSE_REFUSALS:.0%} quantile of answerable probabilities on the fitting set",
        "embedding_model": project.index.embedding_model,
        "fitted": time.strftime("%Y-%m-%d"),
        "sentence_choice": chosen,
        "cross_validation": report["cross_validation"],
        "checked_on": {n: f for n, f in report["sets"].items() if n != args.fit},
    }
    if args.write:
        data = {"models": {n: dataclasses.replace(m, provenance=provenance).to_dict() for n, m in models.items()}}
        args.output.write_text(json.dumps(data, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        print(f"wrote {args.output}", file=sys.stderr)
    report["coefficients"] = {
        n: dict(zip(m.features, (round(c, 3) for c in m.coefficients), strict=True)) for n, m in models.items()
    }
    report["threshold"] = round(models["answerability"].threshold, 4)
    print(json.dumps(report, ensure_ascii=False, indent=2))


if __name__ == "__main__":
    main()
