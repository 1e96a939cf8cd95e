"""Words of Chinese text: the jieba tokenizer and the one stopword list.

BM25 indexes `tokenize`'s words and the refusal gate weighs `question_terms`, so both cut text the same
way. `STOPWORDS` are dropped from every token list; `QUESTION_WORDS` adds the words that only ask
(请问, 哪几个, 介绍), which never make a passage relevant to a question.
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Any

from coopbot.text.normalise import comparable

# Question words and particles: frequent in questions, rare in passages, so BM25 would weigh them as
# rare evidence. Dropped on both sides (a passage's own 什么 or 的 carries no topic either).
_STOPWORD_TEXT = (
    "什么 哪些 哪个 哪里 哪儿 哪 如何 怎么 怎样 怎么样 为什么 为何 何时 何地 何种 多少 几 吗 呢 吧 啊 呀 "
    "请问 的 了 是 在 和 与 及 或 之 其 有 为 被 把 对 从 于 以 也 都 就 而 着 过 这 那 该 此"
)
STOPWORDS = frozenset(_STOPWORD_TEXT.split())

# Words that ask rather than say: they never make a passage relevant. The stopwords and more (BM25
# drops only `STOPWORDS`).
_ASKING_TEXT = (
    "哪几 哪几个 几个 是否 是不是 有没有 请 告诉 我 你 您 一下 介绍 说说 讲讲 主要 中 还 又 要 能 会 可以 多 些 个 "
    "它 他们 它们 这个 那个 还有 那么 方面 内容 情况 问题 提出 提到 规定 文件 资料"
)
QUESTION_WORDS = STOPWORDS | frozenset(_ASKING_TEXT.split())
_KEEP = re.compile(r"[0-9a-z\u3400-\u9fff]")

_JIEBA_LOCK = threading.Lock()
_JIEBA: list[Any] = []


def load_jieba() -> Any:
    """jieba, initialised once and quietly (it logs its dictionary loading to stderr by default)."""
    if not _JIEBA:
        with _JIEBA_LOCK:
            if not _JIEBA:
                import jieba  # type: ignore[import-untyped]

                jieba.setLogLevel(logging.WARNING)
                jieba.initialize()
                _JIEBA.append(jieba)
    return _JIEBA[0]


def _is_word(token: str) -> bool:
    """A token with at least one letter or digit (CJK ideographs are letters): not punctuation or space."""
    return any(ch.isalnum() for ch in token)


def tokenize(text: str) -> list[str]:
    """The words BM25 matches, in order (repeats kept): normalised, cut by jieba search mode.

    Full-width and half-width forms, traditional and simplified characters, and ASCII case give the
    same words; punctuation, whitespace and `STOPWORDS` are dropped.
    """
    words = load_jieba().lcut_for_search(comparable(text))
    return [w for token in words for w in token.split() if w not in STOPWORDS and _is_word(w)]


def question_terms(question: str) -> list[str]:
    """The content words of a question: tokens minus question words and punctuation, in order, unique."""
    seen: dict[str, None] = {}
    for token in tokenize(question):
        if token not in QUESTION_WORDS and _KEEP.search(token) and token not in seen:
            seen[token] = None
    return list(seen)
