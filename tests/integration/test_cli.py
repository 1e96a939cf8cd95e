"""The `coopbot` command: instant help, JSON output, clear errors."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from coopbot.cli.main import app
from coopbot.config import Settings

from ..conftest import KNOWLEDGE

runner = CliRunner()


def test_help_does_not_import_heavy_libraries() -> None:
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from coopbot.cli.main import app\n"
        "result = CliRunner().invoke(app, ['--help'])\n"
        "assert result.exit_code == 0, result.output\n"
        "heavy = [m for m in ('torch', 'sentence_transformers', 'chromadb', 'gradio', 'transformers')"
        " if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def _env(settings: Settings) -> dict[str, str]:
    return {
        "COOPBOT_DATA_DIR": str(settings.data_dir),
        "COOPBOT_KNOWLEDGE_DIR": str(settings.knowledge_dir),
        "COOPBOT_EMBEDDING_MODEL": settings.index.embedding_model,
    }


def test_ingest_and_search_json(settings: Settings) -> None:
    shutil.copy(KNOWLEDGE / "seed-cross-regional-innovation-cooperation.txt", settings.knowledge_dir)
    (settings.knowledge_dir / "broken.pdf").write_bytes(b"not a pdf")
    result = runner.invoke(app, ["ingest", "--json"], env=_env(settings))
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["files_indexed"] == 1 and summary["chunks_added"] > 10
    assert summary["skipped"][0]["path"].endswith("broken.pdf") and summary["skipped"][0]["reason"]
    assert {"seconds", "chunks_per_second", "chunks_updated", "chunks_removed"} <= set(summary)

    result = runner.invoke(app, ["search", "跨区域创新合作的概念是什么", "-k", "2", "--json"], env=_env(settings))
    assert result.exit_code == 0, result.output
    assert "跨区域" in result.stdout  # UTF-8, not \\u escapes
    hits = json.loads(result.stdout)["hits"]
    assert len(hits) == 2 and hits[0]["rank"] == 1
    assert {"score", "doc_id", "doc_title", "heading_path", "text", "char_start", "char_end"} <= set(hits[0])


def test_ingest_with_nothing_readable_fails_with_reasons(settings: Settings) -> None:
    (settings.knowledge_dir / "empty.md").write_text("", encoding="utf-8")
    result = runner.invoke(app, ["ingest"], env=_env(settings))
    assert result.exit_code == 1
    assert "nothing could be indexed" in result.output and "empty.md" in result.output


def test_reindex_needs_force(tmp_path: Path) -> None:
    result = runner.invoke(app, ["reindex"], env={"COOPBOT_DATA_DIR": str(tmp_path)})
    assert result.exit_code == 1 and "--force" in result.output


def test_search_on_empty_index_says_ingest_first(settings: Settings) -> None:
    result = runner.invoke(app, ["search", "长三角"], env=_env(settings))
    assert result.exit_code == 1 and "coopbot ingest" in result.output


def test_ask_json_and_chat(settings: Settings) -> None:
    shutil.copy(KNOWLEDGE / "seed-cross-regional-innovation-cooperation.txt", settings.knowledge_dir)
    env = dict(os.environ, **_env(settings))
    coopbot = str(Path(sys.executable).parent / "coopbot")
    subprocess.run([coopbot, "ingest"], env=env, check=True, capture_output=True)

    asked = subprocess.run(
        [coopbot, "ask", "欧盟用什么计划促进成员国之间的科研合作？", "--json"], env=env, capture_output=True, text=True
    )
    assert asked.returncode == 0, asked.stderr
    answer = json.loads(asked.stdout)
    assert not answer["refused"] and "地平线2020" in answer["text"] and "[1]" in answer["text"]
    assert answer["citations"][0]["doc_file"] == "seed-cross-regional-innovation-cooperation.txt"

    chat = subprocess.run(
        [coopbot, "chat"],
        input="跨区域创新合作面临哪些挑战？\n那未来的发展趋势呢？\n\n",
        env=env,
        capture_output=True,
        text=True,
    )
    assert chat.returncode == 0, chat.stderr
    # Both turns are answered with citations, and the follow-up ("那……呢") reaches the trends section.
    assert "知识库中没有找到" not in chat.stdout and chat.stdout.count("[1]") >= 2
    assert "未来发展趋势" in chat.stdout
    assert "seed-cross-regional-innovation-cooperation.txt" in chat.stdout

    empty = subprocess.run([coopbot, "ask", "   "], env=env, capture_output=True, text=True)
    assert empty.returncode == 1 and "问题是空的" in empty.stderr
