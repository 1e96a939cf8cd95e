"""Settings: defaults, environment, coopbot.toml, validation, the README's table, and the offline environment."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from coopbot.config import (
    BUNDLED_MODEL,
    FLAT_NAMES,
    OFFLINE_ENV,
    Settings,
    offline,
    settings_markdown,
    settings_table,
)

from ..conftest import ROOT


def test_defaults() -> None:
    settings = Settings()
    assert settings.data_dir == Path(".coopbot")
    assert settings.index.chroma_mode == "embedded"
    assert settings.index.embedding_model == BUNDLED_MODEL
    assert settings.llm.backend == "auto" and settings.answer.top_k == 8 and settings.server.port == 7860
    assert settings.chroma_path == Path(".coopbot/chroma")


def _toml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    toml = tmp_path / "coopbot.toml"
    toml.write_text(text, encoding="utf-8")
    monkeypatch.setenv("COOPBOT_CONFIG", str(toml))


def test_environment_beats_toml_beats_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _toml(tmp_path, monkeypatch, 'chroma_mode = "server"\nchroma_port = 9001\ncollection = "from-toml"\n')
    monkeypatch.setenv("COOPBOT_COLLECTION", "from-env")
    settings = Settings()
    assert settings.index.chroma_mode == "server" and settings.index.chroma_port == 9001
    assert settings.index.collection == "from-env"


def test_sections_by_nested_names_in_the_environment_and_tables_in_toml(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _toml(tmp_path, monkeypatch, '[index]\nchunk_size = 300\nchunk_overlap = 40\n\n[llm]\nbackend = "openai"\n')
    monkeypatch.setenv("COOPBOT_ANSWER__TOP_K", "5")
    monkeypatch.setenv("COOPBOT_SERVER__API_KEYS", '["k1", "k2"]')
    settings = Settings()
    assert (settings.index.chunk_size, settings.index.chunk_overlap, settings.llm.backend) == (300, 40, "openai")
    assert settings.answer.top_k == 5
    assert [key.get_secret_value() for key in settings.server.api_keys] == ["k1", "k2"]


def test_every_flat_name_from_before_the_sections_still_works(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COOPBOT_LLM", "extractive")  # `llm` is a section now, and still the old backend name
    monkeypatch.setenv("COOPBOT_ANSWER_TOP_K", "5")
    monkeypatch.setenv("COOPBOT_RETRIEVAL_CANDIDATES", "7")
    monkeypatch.setenv("COOPBOT_API_KEYS", '["k1"]')
    settings = Settings(chunk_size=300, chunk_overlap=40, llm_threads=1)
    assert (settings.llm.backend, settings.llm.threads) == ("extractive", 1)
    assert (settings.answer.top_k, settings.retrieval.candidates) == (5, 7)
    assert (settings.index.chunk_size, settings.index.chunk_overlap) == (300, 40)
    assert [key.get_secret_value() for key in settings.server.api_keys] == ["k1"]
    for flat, (section, field) in FLAT_NAMES.items():  # each old name lands on exactly one field
        assert field in Settings.model_fields[section].annotation.model_fields, flat  # type: ignore[union-attr]
    assert len(set(FLAT_NAMES.values())) == len(FLAT_NAMES)


def test_the_usual_order_holds_between_flat_and_nested_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _toml(tmp_path, monkeypatch, '[index]\ncollection = "nested-in-toml"\n')
    monkeypatch.setenv("COOPBOT_COLLECTION", "flat-in-env")
    assert Settings().index.collection == "flat-in-env"
    assert Settings(collection="flat-argument").index.collection == "flat-argument"
    _toml(tmp_path, monkeypatch, 'collection = "flat-in-toml"\n')
    monkeypatch.delenv("COOPBOT_COLLECTION")
    monkeypatch.setenv("COOPBOT_INDEX__COLLECTION", "nested-in-env")
    assert Settings().index.collection == "nested-in-env"


def test_one_setting_spelled_twice_with_different_values_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COOPBOT_CHUNK_SIZE", "300")
    monkeypatch.setenv("COOPBOT_INDEX__CHUNK_SIZE", "400")
    with pytest.raises(ValueError, match="COOPBOT_CHUNK_SIZE and COOPBOT_INDEX__CHUNK_SIZE"):
        Settings()
    monkeypatch.setenv("COOPBOT_INDEX__CHUNK_SIZE", "300")
    assert Settings().index.chunk_size == 300  # the same value twice is fine
    monkeypatch.delenv("COOPBOT_CHUNK_SIZE")
    monkeypatch.delenv("COOPBOT_INDEX__CHUNK_SIZE")
    _toml(tmp_path, monkeypatch, "answer_top_k = 3\n[answer]\ntop_k = 4\n")
    with pytest.raises(ValueError, match=r"`answer_top_k` and `answer\.top_k`"):
        Settings()


def test_a_misspelt_name_inside_a_section_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _toml(tmp_path, monkeypatch, "[index]\nchunk_sise = 300\n")
    with pytest.raises(ValidationError, match="chunk_sise"):
        Settings()


def test_replace_takes_flat_or_nested_names_and_validates() -> None:
    settings = Settings(data_dir=Path("/tmp/x"))
    changed = settings.replace(chunk_size=300, retrieval_candidates=3, llm="openai", answer={"top_k": 2})
    assert (changed.index.chunk_size, changed.retrieval.candidates, changed.llm.backend) == (300, 3, "openai")
    assert changed.answer.top_k == 2 and changed.answer.passages == 5 and changed.data_dir == Path("/tmp/x")
    assert settings.index.chunk_size == 450  # the original is untouched
    with pytest.raises(ValidationError, match="chunk_overlap"):
        settings.replace(chunk_size=100)


def test_model_copy_with_an_update_is_a_validated_replace() -> None:
    settings = Settings()
    copied = settings.model_copy(update={"llm": "openai", "chunk_size": 300})
    assert copied.llm.backend == "openai" and copied.index.chunk_size == 300
    with pytest.raises(ValidationError):
        settings.model_copy(update={"llm": "no-such-backend"})
    assert settings.model_copy() == settings


def test_invalid_values_name_the_field(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COOPBOT_CHROMA_MODE", "cloud")
    with pytest.raises(ValidationError, match="chroma_mode"):
        Settings()
    monkeypatch.delenv("COOPBOT_CHROMA_MODE")
    with pytest.raises(ValidationError, match="chunk_overlap"):
        Settings(chunk_size=200, chunk_overlap=150)


def test_every_setting_is_described_and_the_readme_table_is_the_generated_one() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for env_name, _flat, _default, description in settings_table():
        assert description, env_name
    assert settings_markdown() in readme, (
        "the README's configuration table is out of date: paste the output of "
        'python -c "from coopbot.config import settings_markdown; print(settings_markdown())"'
    )


def test_offline_fills_in_the_environment_and_an_explicit_value_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in OFFLINE_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    offline()
    assert {name: os.environ[name] for name in OFFLINE_ENV} == {**OFFLINE_ENV, "HF_HUB_OFFLINE": "0"}
