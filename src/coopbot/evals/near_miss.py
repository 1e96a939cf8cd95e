"""Near misses made from a reading-comprehension set: the same question about a year, place, person or
organisation its article never mentions.

Leave-gold-out removes the answer but keeps the question's subject in the corpus (the article's other
paragraphs). A user's near miss is the other way round: the question matches a passage in every word but
one, the named thing, and that one the knowledge base does not cover ("2030年的目标" where the plan says
2025, "广东的" where the report is Shanghai's). `swap_named_thing` makes such questions from any set with
articles, so the gate can be fitted and checked on them without writing a single case by hand: a year of
the question that its article mentions moves to a year the article never mentions; otherwise a place,
person or organisation moves to one of the same kind that other questions of the set name and this
article never mentions. The answer is then still in the corpus, about something else: must refuse.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from coopbot.text.names import NAME_TAGS, NamedThing, named_things
from coopbot.text.normalise import comparable

if TYPE_CHECKING:
    from coopbot.evals.retrieval import EvalSet, Query

_YEAR_STEPS = (1, -1, 2, -2, 3, -3, 5, -5, 7, -7, 10, -10, 13, -13, 20, -20)


def name_inventory(questions: Sequence[str]) -> dict[str, list[str]]:
    """Every place, person and organisation the questions name, by kind, in first-seen order."""
    inventory: dict[str, dict[str, None]] = {kind: {} for kind in NAME_TAGS}
    for question in questions:
        for thing in named_things(question):
            if thing.kind in inventory:
                inventory[thing.kind][thing.text] = None
    return {kind: list(names) for kind, names in inventory.items()}


def swap_named_thing(
    question: str, article: str, inventory: Mapping[str, Sequence[str]], rng: random.Random
) -> tuple[str, str, str] | None:
    """(near-miss question, the name taken out, the name put in), or None when the question names nothing
    its article (`comparable` text of all its passages) mentions, or no stand-in is absent from the article."""
    text = comparable(question)
    for thing in named_things(question):
        if thing.text not in article:
            continue  # only a name the article answers about makes a near miss when swapped
        stand_in = _stand_in(thing, article, inventory, rng)
        if stand_in is not None:
            return _put_in(question, text, thing.text, stand_in), thing.text, stand_in
    return None


def _put_in(question: str, text: str, name: str, stand_in: str) -> str:
    """The question in its own script and width with `name` (found in `text`, its `comparable` form)
    replaced: a near miss must differ from its question only in the name, or the gate would learn the
    script (DRCD asks in traditional characters) instead of the name."""
    at = text.find(name)
    if len(text) != len(question):  # folding changed the length: positions do not carry over
        return text.replace(name, stand_in)
    return question[:at] + stand_in + question[at + len(name) :]


def _stand_in(
    thing: NamedThing, article: str, inventory: Mapping[str, Sequence[str]], rng: random.Random
) -> str | None:
    if thing.kind == "year":
        years = [str(int(thing.text) + step) for step in _YEAR_STEPS]
        return next((y for y in years if y not in article), None)
    candidates = [
        n for n in inventory.get(thing.kind, ()) if n not in article and thing.text not in n and n not in thing.text
    ]
    return rng.choice(candidates) if candidates else None


def near_miss_queries(eval_set: EvalSet, seed: int = 0) -> list[Query]:
    """One near miss per question that has a swappable name (ids `<id>~near`), gold ids kept: the gold
    passage is still in the corpus, answering about the name that was swapped out."""
    from coopbot.evals.retrieval import Query

    articles: dict[str, list[str]] = {}
    article_of = {}
    for passage in eval_set.passages:
        key = passage.title or passage.id
        articles.setdefault(key, []).append(comparable(passage.text))
        article_of[passage.id] = key
    text = {key: "\n".join(parts) for key, parts in articles.items()}
    inventory = name_inventory([q.question for q in eval_set.queries])
    rng = random.Random(seed)
    made = []
    for query in eval_set.queries:
        keys = {article_of[g] for g in query.gold_ids if g in article_of}
        swapped = swap_named_thing(query.question, "\n".join(text[k] for k in keys), inventory, rng) if keys else None
        if swapped is not None:
            made.append(Query(f"{query.id}~near", swapped[0], query.gold_ids, query.answers))
    return made
