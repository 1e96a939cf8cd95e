"""The local model runs in a supervised process: a crash is a fallback, never an outage, and no orphan is left.

Real processes throughout: the web app (`python app.py`), `coopbot ask` and `coopbot model prepare --llm`
as users run them, the real GGUF in llama.cpp's server, SIGKILL for a crash. A crashing library is
simulated by a `llama_cpp` package on PYTHONPATH that kills its own process with SIGSEGV when imported,
which is what a build with instructions the CPU refuses does at its first matrix multiply.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from coopbot.config import Settings
from coopbot.llm.base import GenerationError
from coopbot.llm.process import ModelServer

from ..conftest import ROOT, coopbot, local_model_env
from ..processes import stop, wait_ready
from ..web_fixtures import free_port

QUESTION = "长三角一体化规划纲要覆盖的区域总面积有多大？"
CRASHING_LLAMA = "import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)\n"


def _alive(pid: int) -> bool:
    """Running, and not a zombie waiting for a parent that is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def _gone_within(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    return not _alive(pid)


@pytest.fixture
def crashing_llama(tmp_path: Path) -> Path:
    """A folder to put first on PYTHONPATH: its `llama_cpp` dies with SIGSEGV on import."""
    package = tmp_path / "crashing" / "llama_cpp"
    (package / "server").mkdir(parents=True)
    (package / "__init__.py").write_text(CRASHING_LLAMA, encoding="utf-8")
    (package / "server" / "__init__.py").write_text("", encoding="utf-8")
    return package.parent


def test_a_library_that_crashes_at_start_is_reported_and_retried_with_backoff(
    crashing_llama: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PYTHONPATH", f"{crashing_llama}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    server = ModelServer(["--model", "x.gguf"], start_timeout_s=30, log_path=tmp_path / "m.log", max_failed_starts=2)
    began = time.monotonic()
    server.start()
    try:
        with pytest.raises(GenerationError, match="SIGSEGV"):
            server.wait_ready(60)
        status = server.status()
        assert status.state == "failed" and status.pid is None and "重建" in status.detail
        assert time.monotonic() - began > 0.5  # one backoff between the two starts
    finally:
        server.stop()
    assert server.status().state == "stopped"


def test_a_model_that_never_gets_ready_is_stopped_and_said_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A child still loading when the start timeout runs out is killed; the reason is the timeout, not our kill."""
    package = tmp_path / "hanging" / "llama_cpp"
    (package / "server").mkdir(parents=True)
    (package / "__init__.py").write_text("import time\ntime.sleep(600)\n", encoding="utf-8")
    (package / "server" / "__init__.py").write_text("", encoding="utf-8")
    monkeypatch.setenv("PYTHONPATH", f"{package.parent}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    server = ModelServer(["--model", "x.gguf"], start_timeout_s=1.5, max_failed_starts=1)
    server.start()
    try:
        with pytest.raises(GenerationError, match="限定时间内就绪"):
            server.wait_ready(30)
        assert server.status().pid is None  # the hanging child was killed
    finally:
        server.stop()


def test_a_missing_model_file_fails_at_once_with_what_to_do(tmp_path: Path) -> None:
    from coopbot.llm.local import model_server

    settings = Settings(data_dir=tmp_path, llm="llamacpp")
    server = model_server(tmp_path / "absent.gguf", settings, max_failed_starts=1)
    server.start()
    try:
        with pytest.raises(GenerationError, match="model prepare --llm"):
            server.wait_ready(30)
    finally:
        server.stop()


def test_prepare_reports_a_crashing_library_and_auto_then_serves_extractive(
    gguf: Path, crashing_llama: Path, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    (data / "models").mkdir(parents=True)
    (data / "models" / gguf.name).symlink_to(gguf)  # the verified model, without copying 1.1 GB
    stamp = gguf.with_name(gguf.name + ".verified.json")
    shutil.copy(stamp, data / "models" / stamp.name)
    env = {
        "COOPBOT_DATA_DIR": str(data),
        "COOPBOT_LLM_START_TIMEOUT_S": "120",
        "PYTHONPATH": f"{crashing_llama}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
    }
    run = coopbot("model", "prepare", "--llm", env=env)
    assert run.returncode != 0
    said = " ".join((run.stdout + run.stderr).split())
    assert "did not run here" in said and "SIGSEGV" in said and "build-llama.sh" in said, said
    assert "extractive" in said
    probe = (
        "from coopbot.config import Settings; from coopbot.llm.factory import make_generator; "
        "print(make_generator(Settings(llm='auto')))"
    )
    auto = subprocess.run(
        [sys.executable, "-c", probe], env={**os.environ, **env}, capture_output=True, text=True, timeout=120
    )
    assert auto.returncode == 0 and auto.stdout.strip() == "None", auto.stderr[-2000:]


def test_coopbot_ask_answers_with_the_model_and_leaves_no_process(kb_settings: Settings, gguf: Path) -> None:
    env = local_model_env(kb_settings, gguf)
    before = _model_processes()
    run = coopbot("ask", QUESTION, "--json", env=env)
    assert run.returncode == 0, run.stderr[-2000:]
    answer = json.loads(run.stdout)
    assert answer["backend"] == "llamacpp" and not answer["fallback_from"] and "35.8万" in answer["text"]
    time.sleep(1)
    assert _model_processes() <= before  # the CLI stopped its model process on the way out


def _model_processes() -> set[int]:
    found = set()
    for stat in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if b"coopbot.llm.child" in stat.read_bytes() and _alive(int(stat.parent.name)):
                found.add(int(stat.parent.name))
        except OSError:
            continue
    return found


@pytest.fixture
def app_with_model(
    tmp_path: Path, kb_settings: Settings, gguf: Path
) -> Iterator[tuple[str, subprocess.Popen[bytes], Path]]:
    """`python app.py` with the local model, over a copy of the indexed knowledge base (model log: data/logs)."""
    data = tmp_path / "data"
    shutil.copytree(kb_settings.data_dir, data)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("COOPBOT_")}
    env.update(
        COOPBOT_CONFIG=str(tmp_path / "absent.toml"),
        COOPBOT_DATA_DIR=str(data),
        COOPBOT_KNOWLEDGE_DIR=str(kb_settings.knowledge_dir),
        COOPBOT_EMBEDDING_MODEL=kb_settings.index.embedding_model,
        COOPBOT_PORT=str(port),
        COOPBOT_LLM="llamacpp",
        COOPBOT_LLM_MODEL_PATH=str(gguf),
        COOPBOT_LLM_TIMEOUT_S="600",
        COOPBOT_WARM_UP="false",
        PYTHONUNBUFFERED="1",
    )
    log = tmp_path / "app.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, str(ROOT / "app.py")], cwd=tmp_path, env=env, stdout=out, stderr=out
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url + "/healthz", process, log, timeout=300, what="the web app")
        yield url, process, data
    finally:
        if process.poll() is None:
            stop(process, timeout=15)


def _model(url: str) -> dict[str, object]:
    response = httpx.get(url + "/healthz", timeout=10, trust_env=False)
    assert response.status_code == 200
    model = response.json()["model"]
    assert isinstance(model, dict)
    return model


def _wait_for_state(url: str, state: str, seconds: float) -> dict[str, object]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        model = _model(url)
        if model["state"] == state:
            return model
        time.sleep(0.2)
    raise AssertionError(f"the model never reached {state!r}: {_model(url)}")


def _ask_streaming(url: str) -> dict[str, object]:
    """POST /api/ask/stream and return the final `answer` event's Answer."""
    final: dict[str, object] = {}
    event = ""
    with httpx.stream("POST", url + "/api/ask/stream", json={"question": QUESTION}, timeout=600, trust_env=False) as r:
        assert r.status_code == 200
        for line in r.iter_lines():
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:") and event == "answer":
                final = json.loads(line[5:])
    return final


def test_sigkill_of_the_model_mid_answer_is_a_fallback_and_the_model_comes_back(
    app_with_model: tuple[str, subprocess.Popen[bytes], Path],
) -> None:
    url, app, data = app_with_model
    first = _wait_for_state(url, "ready", 300)
    model_pid = first["pid"]
    assert isinstance(model_pid, int) and _alive(model_pid)

    model_log = data / "logs" / "model-server.log"
    result: dict[str, object] = {}
    asker = threading.Thread(target=lambda: result.update(_ask_streaming(url)))
    asker.start()
    deadline = time.monotonic() + 120
    while b"/v1/chat/completions" not in model_log.read_bytes() and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)  # the model process has the request and is reading the prompt: the answer is in flight
    os.kill(model_pid, signal.SIGKILL)
    asker.join(300)

    assert result, "the client got no final answer"
    assert result["backend"] == "extractive" and result["fallback_from"] == "llamacpp", result
    assert result["citations"] and "35.8万" in str(result["text"])
    assert any("llamacpp" in str(n) for n in result["notices"]), result["notices"]  # type: ignore[attr-defined]

    seen = set()
    deadline = time.monotonic() + 5
    while "restarting" not in seen and time.monotonic() < deadline:  # the monitor sees the exit within moments
        seen.add(str(_model(url)["state"]))
    assert "restarting" in seen, seen
    back = _wait_for_state(url, "ready", 300)
    assert back["restarts"] == 1 and back["pid"] != model_pid

    again = httpx.post(url + "/api/ask", json={"question": QUESTION}, timeout=600, trust_env=False).json()
    assert again["backend"] == "llamacpp" and not again["fallback_from"], again["notices"]

    # the app killed outright leaves no model process behind
    new_pid = back["pid"]
    assert isinstance(new_pid, int)
    app.send_signal(signal.SIGKILL)
    app.wait(10)
    assert _gone_within(new_pid, 10), f"model process {new_pid} outlived the app"


def test_the_app_stopped_normally_stops_its_model(app_with_model: tuple[str, subprocess.Popen[bytes], Path]) -> None:
    url, app, _data = app_with_model
    pid = _wait_for_state(url, "ready", 300)["pid"]
    assert isinstance(pid, int)
    app.send_signal(signal.SIGTERM)
    app.wait(30)
    assert _gone_within(pid, 10), f"model process {pid} outlived the app"
