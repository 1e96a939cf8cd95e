"""One settings object for every entry point: environment `COOPBOT_*`, then `coopbot.toml`, then defaults.

Also `offline()`, the environment every entry point sets before a model or UI library is imported.
The bottom layer: imports nothing from coopbot.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from .flat import FLAT_NAMES, SECTIONS, EnvWithFlatNames, TomlWithFlatNames, nest_flat_names
from .sections import (
    BUNDLED_MODEL,
    AnswerSettings,
    IndexSettings,
    LLMSettings,
    RetrievalSettings,
    ServerSettings,
)

__all__ = [
    "BUNDLED_MODEL",
    "FLAT_NAMES",
    "OFFLINE_ENV",
    "AnswerSettings",
    "IndexSettings",
    "LLMSettings",
    "RetrievalSettings",
    "ServerSettings",
    "Settings",
    "offline",
    "settings_markdown",
    "settings_table",
]

OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",  # huggingface_hub: never call the hub
    "TRANSFORMERS_OFFLINE": "1",
    "ANONYMIZED_TELEMETRY": "False",  # chromadb
    "GRADIO_ANALYTICS_ENABLED": "False",
    "GRADIO_SSR_MODE": "False",  # no Node server beside the Gradio pages
}


def offline() -> None:
    """Keep the libraries coopbot uses off the network: set `OFFLINE_ENV`, unless a variable is already set.

    Model hubs are unreachable where coopbot runs and nothing may reach the network (no downloads, no
    telemetry, no analytics). Call it before sentence-transformers, chromadb or gradio is imported: they
    read these variables at import. A value the user set explicitly wins.
    """
    for name, value in OFFLINE_ENV.items():
        os.environ.setdefault(name, value)


def _config_file() -> Path:
    """`COOPBOT_CONFIG` names the TOML file; by default `coopbot.toml` in the working directory."""
    return Path(os.environ.get("COOPBOT_CONFIG", "coopbot.toml"))


class Settings(BaseSettings):
    """Everything coopbot can be told, in sections; each field is also an env var (see `settings_table`).

    `settings.index.chunk_size` is `COOPBOT_INDEX__CHUNK_SIZE` or `[index] chunk_size` in `coopbot.toml`;
    the flat names from before the sections (`COOPBOT_CHUNK_SIZE`, `chunk_size = ...`,
    `Settings(chunk_size=...)`) still work. Rooms take the section they need, not the whole object.
    """

    model_config = SettingsConfigDict(
        env_prefix="COOPBOT_", env_nested_delimiter="__", extra="ignore", validate_default=True
    )

    data_dir: Path = Field(
        Path(".coopbot"),
        description="Where coopbot keeps its state: the embedded Chroma database and prepared models.",
    )
    knowledge_dir: Path = Field(
        Path("knowledge"),
        description="The folder of source documents that `coopbot ingest` indexes by default.",
    )
    index: IndexSettings = Field(default_factory=IndexSettings)
    retrieval: RetrievalSettings = Field(default_factory=RetrievalSettings)
    answer: AnswerSettings = Field(default_factory=AnswerSettings)
    llm: LLMSettings = Field(default_factory=LLMSettings)
    server: ServerSettings = Field(default_factory=ServerSettings)

    def __init__(self, **values: Any) -> None:
        super().__init__(**nest_flat_names(values, origin="Settings()"))

    def replace(self, **changes: Any) -> Settings:
        """A validated copy with some settings changed, by flat name (`chunk_size=300`) or by section.

        A flat name lands in its section and the result is validated; `model_copy(update=...)` does the same.
        """
        values = self.model_dump()
        for key, value in nest_flat_names(changes, origin="replace()").items():
            merge = key in SECTIONS and isinstance(value, dict)
            values[key] = {**values[key], **value} if merge else value
        return type(self).model_validate(values)

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Settings:
        """pydantic's copy, except that `update` goes through `replace`: pydantic sets its keys unvalidated, so
        `update={"llm": "openai"}` replaced the whole `llm` section with a string (a test did exactly that)."""
        copied = super().model_copy(deep=deep)
        return copied.replace(**update) if update else copied

    @property
    def chroma_path(self) -> Path:
        """Folder of the embedded Chroma database."""
        return self.data_dir / "chroma"

    @property
    def models_dir(self) -> Path:
        """Folder of prepared models (the converted bundled model lives here)."""
        return self.data_dir / "models"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Arguments beat the environment, which beats `coopbot.toml`, which beats the defaults."""
        env = EnvWithFlatNames(settings_cls)
        return (init_settings, env, TomlWithFlatNames(settings_cls, toml_file=_config_file()))


def settings_table() -> list[tuple[str, str, str, str]]:
    """(env var, its flat alias or "", default, description) for every setting: the README's table is this."""
    rows = []
    for name, info in Settings.model_fields.items():
        if name in SECTIONS:
            continue
        rows.append((f"COOPBOT_{name.upper()}", "", _default(info), info.description or ""))
    for section, model in SECTIONS.items():
        for name, info in model.model_fields.items():
            flat = model.flat_names.get(name, name)
            rows.append(
                (
                    f"COOPBOT_{section.upper()}__{name.upper()}",
                    f"COOPBOT_{flat.upper()}",
                    _default(info),
                    info.description or "",
                )
            )
    return rows


def _default(info: FieldInfo) -> str:
    value = info.get_default(call_default_factory=True)
    if value is None:
        return "(unset)"
    if isinstance(value, SecretStr):
        return "(empty)" if not value.get_secret_value() else "(set)"
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False)
    return str(value) if str(value) else "(empty)"


def settings_markdown() -> str:
    """The README's configuration table, generated so it cannot drift from the code."""
    lines = ["| variable | also read as | default | what it does |", "|---|---|---|---|"]
    for env, flat, default, description in settings_table():
        alias = f"`{flat}`" if flat else ""
        shown = default if default.startswith("(") else f"`{default}`"
        lines.append(f"| `{env}` | {alias} | {shown} | {description} |")
    return "\n".join(lines) + "\n"
