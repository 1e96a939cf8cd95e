"""The one table from file suffix to reader: coopbot ingests exactly the suffixes registered here.

A reader module decorates its read function with `@reader(format_name, *suffixes)`; importing the
module (the package `__init__` imports every reader) fills the table. Ingestion, uploads, the web UI
and the API all take their list of accepted suffixes from `supported_suffixes()`, so they cannot drift.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

_FORMATS_EXTRA = "pip install 'coopbot[formats]'"


class LoadError(Exception):
    """A file coopbot cannot use; the message says what is wrong and what to do about it."""


@dataclass(frozen=True)
class Extracted:
    """What a reader got out of a file's bytes, before the shared clean-up and titling."""

    text: str
    encoding: str  # the codec the text was decoded with, or the binary format's name ("pdf")
    title: str | None = None  # the title when the text has no heading of its own (HTML's <title>, a CSV's name)


ReadFunction = Callable[[bytes, str], Extracted]
"""Called as read(data, file_name); raises LoadError, naming the file, for anything it cannot use."""


@dataclass(frozen=True)
class Reader:
    """A registered reader and how its format is titled and cleaned."""

    format_name: str  # the name furniture.toml's `formats` uses
    read: ReadFunction
    heading_levels: int  # a `#` heading up to this level in the text is the title; 0: headings are not titles


_READERS: dict[str, Reader] = {}


def reader(format_name: str, *suffixes: str, heading_levels: int = 0) -> Callable[[ReadFunction], ReadFunction]:
    """Register the decorated function as the reader of `suffixes` (lower case, with the dot)."""

    def register(read: ReadFunction) -> ReadFunction:
        for suffix in suffixes:
            if suffix in _READERS or suffix != suffix.lower() or not suffix.startswith("."):
                raise ValueError(f"cannot register {suffix!r}: taken, or not a lower-case suffix with its dot")
        _READERS.update(dict.fromkeys(suffixes, Reader(format_name, read, heading_levels)))
        return read

    return register


def supported_suffixes() -> tuple[str, ...]:
    """Every registered suffix, in registration order."""
    return tuple(_READERS)


def format_names() -> frozenset[str]:
    """The registered format names (several suffixes can share one, as .md and .markdown do)."""
    return frozenset(entry.format_name for entry in _READERS.values())


def reader_for(suffix: str, name: str) -> Reader:
    """The reader of `suffix`; a LoadError that lists what coopbot reads for any other."""
    entry = _READERS.get(suffix)
    if entry is None:
        raise LoadError(
            f"{name}: unsupported file type {suffix or '(no suffix)'}; coopbot reads "
            f"{', '.join(supported_suffixes())}. Export it to one of these, or move it out of the folder."
        )
    return entry


def missing_package(package: str, suffix: str) -> LoadError:
    """The error for a reader whose optional package is not installed: it names the extra to install."""
    return LoadError(f"reading {suffix} files needs the {package} package: {_FORMATS_EXTRA}")
