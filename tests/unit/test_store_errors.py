"""The store's own failures, translated: what is wrong and what to do, in one line; other errors pass untouched."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from chromadb.errors import InternalError, InvalidArgumentError, NotFoundError

from coopbot.config import Settings
from coopbot.index.errors import StoreError, StoreUnavailable, store_problem, translate_errors


@pytest.fixture
def embedded(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", knowledge_dir=tmp_path / "knowledge")


@pytest.fixture
def server(embedded: Settings) -> Settings:
    return embedded.replace(chroma_mode="server", chroma_host="10.0.0.5", chroma_port=8123)


MALFORMED = (
    "Error executing plan: Internal error: error returned from database: (code: 11) database disk image is malformed"
)


def test_a_server_that_refuses_is_unreachable(server: Settings) -> None:
    problem = store_problem(server, httpx.ConnectError("[Errno 111] Connection refused"))
    assert problem is not None and problem.kind == "unreachable"
    assert "10.0.0.5:8123" in problem.what and "Connection refused" in problem.what
    assert "chroma run" in problem.hint and "\n" not in str(problem)


@pytest.mark.parametrize(
    "error", [httpx.ReadTimeout("timed out"), httpx.RemoteProtocolError("closed"), ConnectionResetError(104, "reset")]
)
def test_a_broken_connection_is_unreachable_too(server: Settings, error: Exception) -> None:
    problem = store_problem(server, error)
    assert problem is not None and problem.kind == "unreachable"


def test_a_malformed_database_names_the_file_and_the_fix(embedded: Settings) -> None:
    problem = store_problem(embedded, InternalError(MALFORMED))
    assert problem is not None and problem.kind == "damaged"
    assert str(embedded.chroma_path / "chroma.sqlite3") in problem.what
    assert f"Move the folder {embedded.chroma_path} away" in problem.hint
    assert "`coopbot ingest`" in problem.hint and "reindex --force" in problem.hint


def test_not_a_database_is_damaged_too(embedded: Settings) -> None:
    problem = store_problem(embedded, InternalError("error returned from database: (code: 26) file is not a database"))
    assert problem is not None and problem.kind == "damaged"


def test_a_server_with_a_damaged_database_says_so(server: Settings) -> None:
    problem = store_problem(server, InternalError(MALFORMED))
    assert problem is not None and problem.kind == "damaged" and "--path" in problem.hint


def test_a_missing_collection_says_to_rebuild(embedded: Settings) -> None:
    problem = store_problem(embedded, NotFoundError("Collection [coopbot] does not exist"))
    assert problem is not None and problem.kind == "unreadable" and "coopbot ingest" in problem.hint


def test_a_panic_in_native_code_is_caught(embedded: Settings) -> None:
    class PanicException(BaseException):  # what pyo3 raises for a Rust panic
        pass

    with pytest.raises(StoreUnavailable) as raised, translate_errors(embedded):
        raise PanicException("index out of bounds")
    assert raised.value.kind == "unreadable" and "index out of bounds" in raised.value.what


@pytest.mark.parametrize(
    "error", [ValueError("bad k"), InvalidArgumentError("bad id"), KeyError("doc_id"), KeyboardInterrupt()]
)
def test_other_errors_pass_untouched(embedded: Settings, error: BaseException) -> None:
    with pytest.raises(type(error)), translate_errors(embedded):
        raise error


def test_store_errors_pass_untouched(embedded: Settings) -> None:
    original = StoreError("already clear")
    with pytest.raises(StoreError) as raised, translate_errors(embedded):
        raise original
    assert raised.value is original
