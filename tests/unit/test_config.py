"""Settings: defaults, environment, coopbot.toml, validation, the README's table, and the offline environment."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from coopbot.config import BUNDLED_MODEL, OFFLINE_ENV, Settings, offline, settings_table

from ..conftest import ROOT


def test_defaults() -> None:
    settings = Settings()
    assert settings.data_dir == Path(".coopbot")
    assert settings.chroma_mode == "embedded"
    assert settings.embedding_model == BUNDLED_MODEL
    assert settings.chroma_path == Path(".coopbot/chroma")


def test_environment_beats_toml_beats_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    toml = tmp_path / "coopbot.toml"
    toml.write_text('chroma_mode = "server"\nchroma_port = 9001\ncollection = "from-toml"\n', encoding="utf-8")
    monkeypatch.setenv("COOPBOT_CONFIG", str(toml))
    monkeypatch.setenv("COOPBOT_COLLECTION", "from-env")
    settings = Settings()
    assert settings.chroma_mode == "server" and settings.chroma_port == 9001
    assert settings.collection == "from-env"


def test_invalid_values_name_the_field(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COOPBOT_CHROMA_MODE", "cloud")
    with pytest.raises(ValidationError, match="chroma_mode"):
        Settings()
    monkeypatch.delenv("COOPBOT_CHROMA_MODE")
    with pytest.raises(ValidationError, match="chunk_overlap"):
        Settings(chunk_size=200, chunk_overlap=150)


def test_every_setting_is_described_and_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for env_name, _default, description in settings_table():
        assert description, env_name
        assert f"`{env_name}`" in readme, f"{env_name} missing from the README's configuration table"


def test_offline_fills_in_the_environment_and_an_explicit_value_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in OFFLINE_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    offline()
    assert {name: os.environ[name] for name in OFFLINE_ENV} == {**OFFLINE_ENV, "HF_HUB_OFFLINE": "0"}
