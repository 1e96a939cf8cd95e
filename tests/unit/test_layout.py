"""The house rules, checked by reading the code (ast), so a breach fails CI instead of waiting for a reviewer.

Arrows point down: web, cli -> assistant -> answering, retrieval, llm -> ingest -> index -> text, schema, config.
Each room lists what it may import; imports inside functions count too (lazy imports are still arrows).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "coopbot"
BOTTOM = {"config", "schema"}
CORE = {"text", "index", "ingest", "llm", "retrieval", "answering", "assistant"}
# What each room may import besides itself: the arrows of the README's "How the code is laid out".
MAY_IMPORT: dict[str, set[str]] = {
    "config": set(),
    "schema": {"config"},
    "text": BOTTOM,
    "index": BOTTOM | {"text"},
    "ingest": BOTTOM | {"text", "index"},
    "llm": BOTTOM | {"text"},
    "retrieval": BOTTOM | {"text", "index", "llm"},
    "answering": BOTTOM | {"text", "index", "llm"},
    "assistant": BOTTOM | {"text", "index", "llm", "retrieval", "answering"},
    "evals": BOTTOM | CORE,
    "web": BOTTOM | CORE,
    "cli": BOTTOM | CORE | {"evals"},
}
MAX_LINES = 400


def _room(module: str) -> str:
    """`coopbot.index.bm25` -> `index`; `coopbot.assistant` -> `assistant`."""
    return module.split(".")[1]


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _imports(name: str, path: Path) -> set[str]:
    """Every coopbot module this file imports, at the top or inside a function."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    imported = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join([*package.split(".")[: len(package.split(".")) - node.level + 1], base]).strip(".")
            imported |= {base} | {f"{base}.{alias.name}" for alias in node.names}
    return {m for m in imported if m.startswith("coopbot.") and m.split(".")[1] in MAY_IMPORT}


def test_every_room_is_known() -> None:
    rooms = {_room(name) for name in _modules() if name != "coopbot"} - {"data"}
    assert rooms <= set(MAY_IMPORT), f"a new room needs its arrows in MAY_IMPORT: {rooms - set(MAY_IMPORT)}"


@pytest.mark.parametrize("name", [n for n in _modules() if n != "coopbot"])
def test_imports_point_down(name: str) -> None:
    room = _room(name)
    breaches = sorted(m for m in _imports(name, _modules()[name]) if _room(m) not in MAY_IMPORT[room] | {room})
    assert not breaches, f"{name} ({room}) may import only {sorted(MAY_IMPORT[room])}, not {breaches}"


def test_no_module_over_the_size_a_newcomer_can_read() -> None:
    long = {name: n for name, path in _modules().items() if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert not long, f"split these modules (over {MAX_LINES} lines): {long}"


def test_the_checker_sees_a_breach() -> None:
    """The rules above can fail: a core module importing the web face, even lazily, is caught."""
    source = "def f():\n    from coopbot.web.api import create_app\n    from .words import tokenize\n"
    probe = PACKAGE / "text" / "_probe_layout.py"
    probe.write_text(source, encoding="utf-8")
    try:
        assert _imports("coopbot.text._probe_layout", probe) == {
            "coopbot.web.api",
            "coopbot.web.api.create_app",
            "coopbot.text.words",
            "coopbot.text.words.tokenize",
        }
    finally:
        probe.unlink()
