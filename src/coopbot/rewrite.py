"""Follow-up questions -> standalone retrieval queries.

`那到2035年呢？` means nothing to a retriever on its own. A rewriter sees the recent turns and returns
a query that does; the heuristic one here needs no model, and an LLM rewriter plugs into the same
`QueryRewriter` seam.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from coopbot.answer import question_terms
from coopbot.schema import Turn

QueryRewriter = Callable[[str, Sequence[Turn]], str]

# Openings that lean on what was said before: "那…呢", "还有…", "它…".
_LEANING_START = re.compile(r"^(那么?|那它|还有|另外|此外|并且|而且|以及|同时|它|其|该|这|此|他们|它们|对于这)")
# Words that point back at something named earlier.
_POINTER = re.compile(r"它|其中|该(?!地区|区域)|这部|这个|这些|这项|这一|此外|上述|前者|后者|他们|它们|那里|这里")
# "X呢？" on its own asks "and what about X?": the rest of the question is in the previous turn.
_ELLIPTICAL_END = re.compile(r"呢\s*[？?！!。.…]*\s*$")
_SHORT = 10  # a question this short with at most one content word rarely stands alone
_SHORT_ELLIPSIS = 16  # a "…呢？" question up to this length is elliptical


def is_follow_up(question: str) -> bool:
    """Does the question need earlier turns to be understood?"""
    text = question.strip()
    if _LEANING_START.match(text) or _POINTER.search(text):
        return True
    if len(text) <= _SHORT_ELLIPSIS and _ELLIPTICAL_END.search(text):
        return True
    return len(text) <= _SHORT and len(question_terms(text)) <= 1


def heuristic_rewrite(question: str, history: Sequence[Turn]) -> str:
    """Prefix a follow-up with the user's earlier question(s) it depends on (at most two)."""
    asked = [turn.content.strip() for turn in history if turn.role == "user" and turn.content.strip()]
    if not asked or not is_follow_up(question):
        return question
    context: list[str] = []
    for previous in reversed(asked):
        context.insert(0, previous)
        if not is_follow_up(previous) or len(context) == 2:
            break
    return " ".join([*context, question])
