"""Page furniture: the lines a scraped page carries around its article (slogans, counters, disclaimers).

The rules live in `coopbot/data/furniture.toml` so they can be tuned without touching code; this
module validates them and removes matching lines, only from the formats that file lists (scraped
pages), never from official documents.
"""

from __future__ import annotations

import functools
import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from typing import Any

from coopbot.ingest.loaders.registry import format_names
from coopbot.text.normalise import for_matching

MAX_TITLE_CHARS = 60  # a line longer than this is text, not a title

_WHERE = frozenset({"head", "tail", "anywhere"})
_RULE_KEYS = frozenset({"name", "pattern", "where", "before_repeated_title"})


@dataclass(frozen=True)
class FurnitureRule:
    """One kind of furniture line: a whole-line regex over the `for_matching` form, and where it may be."""

    name: str
    regex: re.Pattern[str]
    where: frozenset[str]
    before_repeated_title: bool = False

    def applies_at(self, index: int, head: set[int], tail: set[int]) -> bool:
        """Whether line `index` lies where this rule looks."""
        return (
            "anywhere" in self.where
            or ("head" in self.where and index in head)
            or ("tail" in self.where and index in tail)
        )


@dataclass(frozen=True)
class Furniture:
    """The furniture rules and the formats (scraped pages) they apply to."""

    formats: frozenset[str]
    window: int
    rules: tuple[FurnitureRule, ...]


def parse_furniture(source: str, origin: str = "furniture.toml") -> Furniture:
    """Parse and validate a furniture rules file; a mistake raises ValueError naming the rule."""
    try:
        data = tomllib.loads(source)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{origin}: not valid TOML: {exc}") from exc
    formats = data.get("formats", [])
    window = data.get("window", 15)
    if not isinstance(formats, list) or not all(f in format_names() for f in formats):
        raise ValueError(f"{origin}: formats must be a list drawn from {sorted(format_names())}")
    if not isinstance(window, int) or window < 1:
        raise ValueError(f"{origin}: window must be a positive whole number of lines")
    rules = data.get("rule", [])
    if not isinstance(rules, list):
        raise ValueError(f"{origin}: rules must be [[rule]] tables")
    return Furniture(frozenset(formats), window, tuple(_parse_rule(r, i, origin) for i, r in enumerate(rules)))


def _parse_rule(raw: Any, index: int, origin: str) -> FurnitureRule:
    """Validate one [[rule]] table, naming the rule (or its position) in every complaint."""
    name = raw.get("name") if isinstance(raw, dict) else None
    label = f"{origin}: rule {name!r}" if isinstance(name, str) else f"{origin}: rule #{index + 1}"
    if not isinstance(raw, dict) or not isinstance(name, str) or not name:
        raise ValueError(f"{label}: every rule needs a non-empty name")
    unknown = set(raw) - _RULE_KEYS
    if unknown:
        raise ValueError(f"{label}: unknown keys {sorted(unknown)}; allowed are {sorted(_RULE_KEYS)}")
    pattern = raw.get("pattern")
    if not isinstance(pattern, str) or not pattern:
        raise ValueError(f"{label}: needs a pattern (a regular expression matching a whole line)")
    try:
        regex = re.compile(pattern, re.IGNORECASE)
    except re.error as exc:
        raise ValueError(f"{label}: bad regular expression {pattern!r}: {exc}") from exc
    where_raw = raw.get("where", "anywhere")
    where = frozenset([where_raw] if isinstance(where_raw, str) else where_raw)
    if not where or not where <= _WHERE:
        raise ValueError(f"{label}: where must be one of {sorted(_WHERE)} or a list of them, not {where_raw!r}")
    before_title = raw.get("before_repeated_title", False)
    if not isinstance(before_title, bool):
        raise ValueError(f"{label}: before_repeated_title must be true or false")
    return FurnitureRule(name, regex, where, before_title)


@functools.cache
def default_furniture() -> Furniture:
    """The rules shipped in `coopbot/data/furniture.toml`, read once."""
    resource = resources.files("coopbot") / "data" / "furniture.toml"
    return parse_furniture(resource.read_text(encoding="utf-8"), origin=str(resource))


def strip_furniture(text: str, furniture: Furniture) -> tuple[str, tuple[str, ...]]:
    """Remove furniture lines from `text`; return the rest and the removed lines (stripped), in order.

    Head and tail rules only look at the first and last `window` non-empty lines, so article text in
    the middle that happens to look like furniture stays. A title repeated within the head is kept
    once, at its first occurrence.
    """
    lines = text.split("\n")
    keys = [for_matching(line).strip() for line in lines]
    filled = [i for i, key in enumerate(keys) if key]
    head, tail = set(filled[: furniture.window]), set(filled[-furniture.window :])
    plain = [rule for rule in furniture.rules if not rule.before_repeated_title]
    before_title = [rule for rule in furniture.rules if rule.before_repeated_title]

    removed = {i for i in filled if _matches(plain, i, keys[i], head, tail)}
    repeats = _repeated_title(keys, [i for i in filled if i in head and i not in removed])
    removed |= repeats
    for position, i in enumerate(filled[:-1]):
        if i not in removed and filled[position + 1] in repeats and _matches(before_title, i, keys[i], head, tail):
            removed.add(i)

    kept = "\n".join(line for i, line in enumerate(lines) if i not in removed)
    return kept, tuple(lines[i].strip() for i in sorted(removed))


def _matches(rules: Iterable[FurnitureRule], index: int, key: str, head: set[int], tail: set[int]) -> bool:
    return any(rule.applies_at(index, head, tail) and rule.regex.fullmatch(key) for rule in rules)


def _repeated_title(keys: list[str], head_lines: list[int]) -> set[int]:
    """Head lines that repeat the first remaining head line (the page title), heading marks ignored."""
    if not head_lines:
        return set()
    title = keys[head_lines[0]].lstrip("#").strip()
    if len(title) > MAX_TITLE_CHARS:
        return set()
    return {i for i in head_lines[1:] if keys[i].lstrip("#").strip() == title}
