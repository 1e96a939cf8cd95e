"""The HTTP API against a real server (`python app.py` on loopback): answers, SSE, the OpenAI-compatible
endpoint through the official `openai` client, `gradio_client`, auth, embed tokens, and clean 4xx errors."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from coopbot.web.auth import mint_embed_token

from ..conftest import coopbot
from ..web_fixtures import API_KEY, EMBED_SECRET, XSS_FILE, WebServer

FACT_QUESTION = "我国的全国科技工作者日定在每年的哪一天？"  # evals/qa/knowledge.jsonl kb-004
FACT_ANSWER = "5月30日"
FACT_FILE = "law-science-and-technology-progress-2021.md"
UNANSWERABLE = "红烧肉怎么做？"


def post(server: WebServer, path: str, body: Any, **kwargs: Any) -> httpx.Response:
    headers = kwargs.pop("headers", server.auth)
    return httpx.post(server.url + path, json=body, headers=headers, timeout=60, **kwargs)


def assert_error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert error["code"] and error["message"]
    return dict(error)


def test_health_reports_backend_and_index(web_server: WebServer) -> None:
    health = httpx.get(web_server.url + "/healthz").json()
    assert health["status"] == "ok"
    assert health["backend"]
    assert health["documents"] >= 14 and health["chunks"] > 900


def test_ask_answers_with_checked_citations(web_server: WebServer) -> None:
    answer = post(web_server, "/api/ask", {"question": FACT_QUESTION}).json()
    assert FACT_ANSWER in answer["text"] and "[1]" in answer["text"]
    assert not answer["refused"]
    assert answer["citations"][0]["doc_file"] == FACT_FILE
    assert FACT_ANSWER in answer["citations"][0]["quote"]


def test_refusal_carries_related_passages_not_citations(web_server: WebServer) -> None:
    answer = post(web_server, "/api/ask", {"question": UNANSWERABLE}).json()
    assert answer["refused"] and answer["citations"] == []
    assert answer["related"], "a refusal shows the closest passages as related"


def test_follow_up_uses_history(web_server: WebServer) -> None:
    history = [
        {"role": "user", "content": "长三角一体化到2025年要达到什么程度？"},
        {"role": "assistant", "content": "到2025年，长三角一体化发展取得实质性进展。"},
    ]
    answer = post(web_server, "/api/ask", {"question": "那到2035年呢？", "history": history}).json()
    assert "2035" in answer["text"] and answer["citations"]
    assert answer["query"] != answer["question"]


def parse_sse(lines: list[str]) -> list[tuple[str, str]]:
    """(event, data) pairs of a text/event-stream body."""
    events: list[tuple[str, str]] = []
    data: list[str] = []
    name = "message"
    for line in lines:
        if not line:
            if data:
                events.append((name, "\n".join(data)))
            name, data = "message", list[str]()
        elif line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())
    return events


def test_sse_stream_sends_deltas_then_the_answer(web_server: WebServer) -> None:
    with httpx.stream(
        "POST", web_server.url + "/api/ask/stream", json={"question": FACT_QUESTION}, headers=web_server.auth
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = parse_sse(list(response.iter_lines()))
    names = [name for name, _ in events]
    assert names[-1] == "answer" and set(names[:-1]) == {"delta"}
    streamed = "".join(json.loads(data)["text"] for name, data in events if name == "delta")
    final = json.loads(events[-1][1])
    assert streamed == final["text"] and FACT_ANSWER in streamed
    assert final["citations"][0]["doc_file"] == FACT_FILE


def test_search_and_documents(web_server: WebServer) -> None:
    hits = httpx.get(web_server.url + "/api/search", params={"q": FACT_QUESTION, "k": 3}, headers=web_server.auth)
    assert [h["rank"] for h in hits.json()["hits"]] == [1, 2, 3]
    assert hits.json()["hits"][0]["doc_id"] == FACT_FILE
    documents = httpx.get(web_server.url + "/api/documents", headers=web_server.auth).json()["documents"]
    by_file = {d["doc_id"]: d for d in documents}
    assert by_file[XSS_FILE]["title"].startswith("蓝鲸示范园管理办法") and by_file[XSS_FILE]["chunks"] >= 1
    assert by_file[FACT_FILE]["in_knowledge_dir"] and by_file[FACT_FILE]["indexed_at"]


def openai_client(server: WebServer, key: str = API_KEY) -> Any:
    from openai import OpenAI

    return OpenAI(base_url=server.url + "/v1", api_key=key, max_retries=0, timeout=60)


def test_openai_client_non_streaming_carries_citations(web_server: WebServer) -> None:
    completion = openai_client(web_server).chat.completions.create(
        model="coopbot", messages=[{"role": "user", "content": FACT_QUESTION}]
    )
    assert FACT_ANSWER in (completion.choices[0].message.content or "")
    assert completion.choices[0].finish_reason == "stop"
    citations = completion.model_extra["citations"]
    assert citations[0]["doc_file"] == FACT_FILE and citations[0]["n"] == 1
    assert completion.model_extra["coopbot"]["refused"] is False


def test_openai_client_streaming_carries_citations_in_the_last_chunk(web_server: WebServer) -> None:
    stream = openai_client(web_server).chat.completions.create(
        model="coopbot",
        messages=[
            {"role": "system", "content": "ignored"},
            {"role": "user", "content": "长三角一体化到2025年要达到什么程度？"},
            {"role": "assistant", "content": "到2025年，长三角一体化发展取得实质性进展。"},
            {"role": "user", "content": "那到2035年呢？"},
        ],
        stream=True,
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "2035" in text
    last = chunks[-1]
    assert last.choices[0].finish_reason == "stop"
    assert last.model_extra["citations"] and "[1]" in text


def test_openai_client_needs_a_valid_key(web_server: WebServer) -> None:
    from openai import AuthenticationError

    with pytest.raises(AuthenticationError):
        openai_client(web_server, key="wrong").chat.completions.create(
            model="coopbot", messages=[{"role": "user", "content": FACT_QUESTION}]
        )


def test_gradio_client_calls_the_chat_endpoint_with_a_key(web_server: WebServer) -> None:
    from gradio_client import Client  # type: ignore[import-untyped]

    client = Client(web_server.url + "/", verbose=False, headers=web_server.auth)
    result = client.predict(FACT_QUESTION, [], api_name="/chat")
    assert result["done"] is True and FACT_ANSWER in result["text"]
    assert result["citations"][0]["doc_file"] == FACT_FILE


def test_api_keys_are_enforced(web_server: WebServer) -> None:
    missing = post(web_server, "/api/ask", {"question": FACT_QUESTION}, headers={})
    assert "Bearer" in assert_error(missing, 401)["message"]
    assert_error(post(web_server, "/api/ask", {"question": FACT_QUESTION}, headers={"Authorization": "Bearer x"}), 401)
    assert_error(httpx.get(web_server.url + "/api/documents"), 401)
    assert httpx.get(web_server.url + "/healthz").status_code == 200  # health needs no key


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"question": ""}, 422),
        ({"question": "   \n\t "}, 400),
        ({"question": 42}, 422),
        ({"question": FACT_QUESTION, "history": "not a list"}, 422),
        ({"question": FACT_QUESTION, "history": [{"role": "robot", "content": "x"}]}, 422),
        ({}, 422),
        ({"question": "问" * 200_000}, 413),
    ],
)
def test_bad_requests_get_clear_4xx_json(web_server: WebServer, body: Any, status: int) -> None:
    assert_error(post(web_server, "/api/ask", body), status)


def test_malformed_and_oversized_bodies(web_server: WebServer) -> None:
    headers = {**web_server.auth, "Content-Type": "application/json"}
    assert_error(httpx.post(web_server.url + "/api/ask", content=b"{not json", headers=headers), 422)
    assert_error(httpx.post(web_server.url + "/v1/chat/completions", content=b"[]", headers=headers), 422)
    no_user = {"model": "coopbot", "messages": [{"role": "assistant", "content": "hi"}]}
    assert_error(post(web_server, "/v1/chat/completions", no_user), 422)

    def chunks() -> Any:  # no Content-Length: the limit is counted as the body arrives
        for _ in range(400):
            yield b" " * 1024

    assert_error(httpx.post(web_server.url + "/api/ask", content=chunks(), headers=headers), 413)
    assert_error(httpx.get(web_server.url + "/api/search", params={"q": "x", "k": 0}, headers=web_server.auth), 422)
    assert_error(httpx.get(web_server.url + "/api/nothing-here", headers=web_server.auth), 404)


def test_embed_tokens_are_minted_with_a_key_and_expire(web_server: WebServer) -> None:
    assert_error(post(web_server, "/api/embed-token", {}, headers={}), 401)
    minted = post(web_server, "/api/embed-token", {"subject": "portal-user-1", "ttl": 60}).json()
    assert minted["expires_at"] - time.time() <= 61
    portal = {"Referer": web_server.portal_url + "/portal.html"}  # the token is bound to the one framing portal
    assert httpx.get(web_server.url + f"/embed/?token={minted['token']}", headers=portal).status_code == 200

    def embed_status(token: str) -> httpx.Response:
        return httpx.get(web_server.url + "/embed/", params={"token": token} if token else None, headers=portal)

    assert embed_status("").status_code == 401
    expired = mint_embed_token(EMBED_SECRET, "portal-user-1", ttl=60, now=time.time() - 120).token
    denied = embed_status(expired)
    assert denied.status_code == 401 and "过期" in denied.text
    forged = mint_embed_token("another-secret", "x", ttl=60).token
    assert embed_status(forged).status_code == 401
    tampered = minted["token"][:-2] + ("AA" if not minted["token"].endswith("AA") else "BB")
    assert embed_status(tampered).status_code == 401
    # Gradio's own routes under /embed need the token too (query string or the embedding page as Referer).
    assert httpx.get(web_server.url + "/embed/config").status_code == 401
    assert httpx.get(web_server.url + "/embed/config", params={"token": minted["token"]}).status_code == 200
    referer = {"Referer": f"{web_server.url}/embed/?token={minted['token']}"}
    assert httpx.get(web_server.url + "/embed/config", headers=referer).status_code == 200


def test_frame_headers(web_server: WebServer) -> None:
    page = httpx.get(web_server.url + "/")
    assert page.headers["x-frame-options"] == "SAMEORIGIN"
    assert "frame-ancestors 'self'" in page.headers["content-security-policy"]
    token = post(web_server, "/api/embed-token", {}).json()["token"]
    portal = {"Referer": web_server.portal_url + "/portal.html"}
    embed = httpx.get(web_server.url + "/embed/", params={"token": token}, headers=portal)
    assert "x-frame-options" not in embed.headers
    assert web_server.portal_url in embed.headers["content-security-policy"]


def test_admin_upload_ask_delete(web_server: WebServer) -> None:
    document = "# 青藤协作公约\n\n第一条 青藤协作公约的签署城市共有七个，秘书处设在芜湖。\n".encode()
    files = {"file": ("../../青藤 公约?.md", document, "text/markdown")}
    assert_error(httpx.post(web_server.url + "/api/documents", files=files), 401)
    assert_error(httpx.post(web_server.url + "/api/documents", files=files, headers=web_server.auth), 403)
    bad = {"file": ("run.exe", b"MZ\x00\x01", "application/octet-stream")}
    assert_error(httpx.post(web_server.url + "/api/documents", files=bad, headers=web_server.admin), 415)
    empty = {"file": ("empty.md", b"", "text/markdown")}
    assert_error(httpx.post(web_server.url + "/api/documents", files=empty, headers=web_server.admin), 400)

    uploaded = httpx.post(web_server.url + "/api/documents", files=files, headers=web_server.admin, timeout=120)
    assert uploaded.status_code == 200, uploaded.text
    doc_id = uploaded.json()["doc_id"]
    assert "/" not in doc_id and ".." not in doc_id and doc_id.endswith(".md")
    assert (web_server.knowledge_dir / doc_id).is_file()
    try:
        answer = post(web_server, "/api/ask", {"question": "青藤协作公约的秘书处设在哪里？"}).json()
        assert "芜湖" in answer["text"] and answer["citations"][0]["doc_file"] == doc_id
    finally:
        deleted = httpx.delete(web_server.url + f"/api/documents/{doc_id}", headers=web_server.admin, timeout=60)
    assert deleted.status_code == 200 and deleted.json()["chunks_removed"] >= 1
    assert not (web_server.knowledge_dir / doc_id).exists()
    documents = httpx.get(web_server.url + "/api/documents", headers=web_server.auth).json()["documents"]
    assert doc_id not in {d["doc_id"] for d in documents}
    assert_error(httpx.delete(web_server.url + f"/api/documents/{doc_id}", headers=web_server.admin), 404)


def test_no_other_process_writes_the_index_while_the_server_runs(web_server: WebServer, model_dir: Path) -> None:
    env = {"COOPBOT_DATA_DIR": str(web_server.data_dir), "COOPBOT_KNOWLEDGE_DIR": str(web_server.knowledge_dir)}
    env["COOPBOT_EMBEDDING_MODEL"] = str(model_dir)
    refused = coopbot("ingest", env={**env, "COOPBOT_CONFIG": str(web_server.data_dir / "absent.toml")})
    assert refused.returncode != 0 and "Traceback" not in refused.stderr
    message = " ".join((refused.stderr + refused.stdout).split())
    assert "coopbot serve (http://127.0.0.1:" in message and "admin API" in message, message
    assert httpx.get(web_server.url + "/healthz").json()["status"] == "ok"
