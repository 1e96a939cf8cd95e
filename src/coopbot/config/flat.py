"""The names settings had before the sections keep working: `COOPBOT_CHUNK_SIZE`, `chunk_size = 300` at the
top of `coopbot.toml`, `Settings(chunk_size=300)` all mean `index.chunk_size`.

Each source (arguments, environment, TOML file) is translated on its own, so the usual order (arguments
beat the environment, which beats the file) holds between a flat and a nested name too. Within one
source, the two spellings of one setting with different values are an error that names both.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic_settings import EnvSettingsSource, TomlConfigSettingsSource

from .sections import AnswerSettings, IndexSettings, LLMSettings, RetrievalSettings, Section, ServerSettings

SECTIONS: dict[str, type[Section]] = {
    "index": IndexSettings,
    "retrieval": RetrievalSettings,
    "answer": AnswerSettings,
    "llm": LLMSettings,
    "server": ServerSettings,
}


def _flat_names() -> dict[str, tuple[str, str]]:
    """Old flat name -> (section, field in the section), for every field of every section."""
    names = {}
    for section, model in SECTIONS.items():
        for field in model.model_fields:
            names[model.flat_names.get(field, field)] = (section, field)
    return names


FLAT_NAMES = _flat_names()


def _is_section_value(value: Any) -> bool:
    """`llm` is both a section and the old name of `llm.backend`: a table or model is the section."""
    return isinstance(value, (Mapping, BaseModel))


def nest_flat_names(values: Mapping[str, Any], origin: str) -> dict[str, Any]:
    """Move flat names into their sections: {"chunk_size": 300} -> {"index": {"chunk_size": 300}}."""
    nested = dict(values)
    for flat, (section, field) in FLAT_NAMES.items():
        if flat not in nested or (flat == section and _is_section_value(nested[flat])):
            continue
        value = nested.pop(flat)
        block = nested.get(section, {})
        block = block.model_dump(exclude_unset=True) if isinstance(block, BaseModel) else dict(block)
        if field in block and block[field] != value:
            raise ValueError(
                f"{origin} sets both `{flat}` and `{section}.{field}` (the same setting) to different values: keep one"
            )
        nested[section] = {**block, field: value}
    return nested


class EnvWithFlatNames(EnvSettingsSource):
    """`COOPBOT_<SECTION>__<FIELD>` as pydantic-settings reads it, plus the flat `COOPBOT_<FLAT>` names."""

    def _load_env_vars(self) -> Mapping[str, str | None]:
        env = dict(super()._load_env_vars())
        prefix = self.env_prefix if self.case_sensitive else self.env_prefix.lower()

        def name(text: str) -> str:
            return prefix + (text if self.case_sensitive else text.lower())

        for flat, (section, field) in FLAT_NAMES.items():
            value = env.get(name(flat))
            if value is None or (flat == section and _is_json_object(value)):
                continue
            del env[name(flat)]
            nested = name(f"{section}__{field}")
            if env.get(nested, value) != value:
                raise ValueError(
                    f"both {(prefix + flat).upper()} and {nested.upper()} are set, to different values: unset one"
                )
            env[nested] = value
        return env


def _is_json_object(text: str) -> bool:
    try:
        return isinstance(json.loads(text), dict)
    except ValueError:
        return False


class TomlWithFlatNames(TomlConfigSettingsSource):
    """`coopbot.toml` with `[index]`-style tables, or the flat names at the top."""

    def _read_file(self, file_path: Any) -> dict[str, Any]:
        return nest_flat_names(super()._read_file(file_path), origin=str(Path(str(file_path))))
