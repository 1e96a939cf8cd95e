"""A real coopbot web server for the API and browser tests: `python app.py` in a subprocess on a free
loopback port, over a copy of the session's indexed knowledge base plus a planted XSS document.

Registered in conftest.py, so test_api.py and test_ui.py share one server per session.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from coopbot.config import OFFLINE_ENV, Settings

from .processes import stop, wait_ready

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"  # git-ignored: screenshots and the server log
API_KEY = "test-api-key-7f3a"
ADMIN_TOKEN = "test-admin-token-91c2"
EMBED_SECRET = "test-embed-secret-5d0e"

# A document whose title, heading and text carry markup that must never run in a browser: each payload
# sets window.__coopbotXss, which the browser test checks stays unset.
XSS_FILE = "xss-probe.md"
XSS_DOC = (
    "# 蓝鲸示范园管理办法<script>window.__coopbotXss = 1</script>\n\n"
    '## 第一章 开放<img src=x onerror="window.__coopbotXss = 2">\n\n'
    "第一条 蓝鲸协作示范园的开放时间为每周二至周六<script>window.__coopbotXss = 3</script>，"
    '节假日另行通知<img src=x onerror="window.__coopbotXss = 4">。\n\n'
    "第二条 示范园由区域协作办公室负责日常管理，入园参观需要提前三天预约。\n"
)
XSS_QUESTION = "蓝鲸协作示范园的开放时间是怎样规定的？"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class WebServer:
    """A running `python app.py` and what tests need to talk to it."""

    url: str
    data_dir: Path
    knowledge_dir: Path
    log: Path
    portal_url: str  # a page of another origin, allowed to frame /embed
    portal_dir: Path  # the portal's files (tests write their iframe page here)
    startup_seconds: float

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {API_KEY}"}

    @property
    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture(scope="session")
def web_server(tmp_path_factory: pytest.TempPathFactory, kb_settings: Settings, model_dir: Path) -> Iterator[WebServer]:
    """`python app.py` over a copy of the indexed knowledge base, with API keys, admin token and embed secret set."""
    base = tmp_path_factory.mktemp("web")
    data_dir = base / "data"
    shutil.copytree(kb_settings.data_dir, data_dir)
    knowledge = base / "knowledge"
    shutil.copytree(kb_settings.knowledge_dir, knowledge)
    for path in knowledge.iterdir():
        path.chmod(0o644)
    (knowledge / XSS_FILE).write_text(XSS_DOC, encoding="utf-8")
    portal_dir = base / "portal"
    portal_dir.mkdir()
    portal = ThreadingHTTPServer(("127.0.0.1", 0), partial(_QuietHandler, directory=str(portal_dir)))
    threading.Thread(target=portal.serve_forever, daemon=True).start()
    portal_url = f"http://127.0.0.1:{portal.server_address[1]}"

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("COOPBOT_")}
    env.update(
        COOPBOT_CONFIG=str(base / "absent.toml"),
        COOPBOT_DATA_DIR=str(data_dir),
        COOPBOT_KNOWLEDGE_DIR=str(knowledge),
        COOPBOT_EMBEDDING_MODEL=str(model_dir),
        COOPBOT_HOST="127.0.0.1",
        COOPBOT_PORT=str(port),
        COOPBOT_API_KEYS=json.dumps([API_KEY]),
        COOPBOT_ADMIN_TOKEN=ADMIN_TOKEN,
        COOPBOT_EMBED_SECRET=EMBED_SECRET,
        COOPBOT_FRAME_ANCESTORS=json.dumps(["'self'", portal_url]),
        PYTHONUNBUFFERED="1",
    )
    env.update(OFFLINE_ENV)
    log = base / "server.log"
    url = f"http://127.0.0.1:{port}"
    began = time.monotonic()
    with log.open("wb") as out:
        process = subprocess.Popen([sys.executable, str(ROOT / "app.py")], cwd=base, env=env, stdout=out, stderr=out)
    try:
        wait_ready(url + "/healthz", process, log, timeout=180, what="the web server")
        server = WebServer(url, data_dir, knowledge, log, portal_url, portal_dir, time.monotonic() - began)
        yield server
    finally:
        stop(process, timeout=15)
        portal.shutdown()
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shutil.copy(log, ARTIFACTS / "server.log")


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass
