"""The HTTP API: routes that translate JSON to `Service` calls and back; OpenAPI docs at `/docs`.

Errors are JSON `{"error": {"code", "message"}}` with a 4xx status (503 when the answer line is full or the
index cannot be used), never a bare 500: bodies are size-limited, questions validated, and `web.errors` maps
each core error to a status. Answer routes are async: they compute on `Service.run`'s threads.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import asdict
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, File, Header, Query, Request, UploadFile
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from coopbot.index.chroma import StoreError
from coopbot.ingest.loaders import SUPPORTED_SUFFIXES
from coopbot.schema import Answer, AnswerEvent, Delta, Final, Turn, hit_to_dict, ingest_report_to_dict
from coopbot.web.auth import bearer
from coopbot.web.docs import add_offline_docs
from coopbot.web.errors import ApiError, add_error_handlers, error_body, store_message
from coopbot.web.service import Service

MODEL_NAME = "coopbot"
_UPLOAD_FILE_HELP = f"One file of type {', '.join(SUPPORTED_SUFFIXES)}."


# -- request and response bodies ----------------------------------------------------------------------


class ChatMessage(BaseModel):
    role: Literal["user", "assistant", "system"]
    content: str = Field(max_length=20_000)


class AskRequest(BaseModel):
    question: str = Field(min_length=1, max_length=20_000, description="The question, in Chinese.")
    history: list[ChatMessage] = Field(
        default_factory=list, max_length=100, description="Earlier turns, oldest first, for follow-up questions."
    )


class EmbedTokenRequest(BaseModel):
    subject: str = Field("", max_length=200, description="Who the token is for (free text, e.g. a portal user id).")
    ttl: int | None = Field(None, ge=30, le=86_400, description="Seconds of validity (default: embed_token_ttl).")
    origin: str | None = Field(
        None,
        max_length=300,
        description="The portal's origin (https://portal.example.org): the token works only in its pages. Default: "
        "the one origin COOPBOT_FRAME_ANCESTORS allows, if it allows exactly one.",
    )


class OpenAIMessage(BaseModel):
    role: str = Field(max_length=32)
    content: str | list[dict[str, Any]] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):  # content parts: keep the text ones
            return "".join(str(p.get("text", "")) for p in self.content if p.get("type") == "text")
        return self.content or ""


class ChatCompletionRequest(BaseModel):
    """The OpenAI chat-completions request; fields coopbot has no use for (temperature...) are accepted and ignored."""

    model: str = Field(MODEL_NAME, max_length=200)
    messages: list[OpenAIMessage] = Field(min_length=1, max_length=200)
    stream: bool = False


# -- middleware ---------------------------------------------------------------------------------------


class BodyLimit:
    """413 for API request bodies over the limit, whether or not they declare a Content-Length."""

    def __init__(self, app: ASGIApp, limit: int, upload_limit: int) -> None:
        self.app, self.limit, self.upload_limit = app, limit, upload_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not (path.startswith("/api/") or path.startswith("/v1/")):
            await self.app(scope, receive, send)
            return
        limit = self.upload_limit if path.rstrip("/") == "/api/documents" else self.limit
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _too_large(send, limit)
            return
        body = bytearray()  # read the body first (it is small, or an upload under its own limit), then replay it
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            body += message.get("body", b"")
            if len(body) > limit:
                await _too_large(send, limit)
                return
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


async def _too_large(send: Send, limit: int) -> None:
    body = json.dumps(error_body("too_large", f"请求体太大：上限是 {limit // 1024} KB。"), ensure_ascii=False)
    await send({"type": "http.response.start", "status": 413, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body.encode("utf-8")})


# -- the app ------------------------------------------------------------------------------------------


def create_app(service: Service) -> FastAPI:
    """The FastAPI app with every API route; `coopbot.web.server` mounts the Gradio pages on it."""
    app = FastAPI(
        title="coopbot API",
        version="1",
        description="中文知识库问答：带可核查引用的回答、检索、文档列表，以及与 OpenAI chat API 兼容的接口。",
        docs_url=None,  # FastAPI's pages load Swagger UI / ReDoc from a CDN: web.docs serves /docs from local files
        redoc_url=None,
    )
    add_offline_docs(app)
    settings = service.settings
    app.add_middleware(
        BodyLimit,
        limit=settings.server.max_request_kb * 1024,
        upload_limit=int(settings.server.max_upload_mb * 1024 * 1024) + 64 * 1024,
    )
    add_error_handlers(app, service)

    async def api_key(authorization: Annotated[str | None, Header()] = None) -> str:  # cheap: on the event loop
        token = bearer(authorization)
        service.guard.check_api(token)
        return token

    async def admin(request: Request, authorization: Annotated[str | None, Header()] = None) -> None:
        service.guard.check_admin(bearer(authorization), client=request.client.host if request.client else "unknown")

    router = APIRouter(dependencies=[Depends(api_key)])

    @app.get("/healthz", tags=["status"])
    async def healthz() -> dict[str, Any]:
        """Alive; `status` "degraded" with `cause` and `hint` when the index cannot be used. Never waits behind
        answers and never calls the store itself (its state is checked in the background every few seconds)."""
        return await service.ahealth()

    @router.post("/api/ask", tags=["answers"])
    async def ask(body: AskRequest) -> dict[str, Any]:
        """The whole answer at once: `Answer` as JSON (text with [n], citations, or a refusal with related passages)."""
        answer = await service.aask(body.question, _turns(body.history))
        return answer.to_dict()

    @router.post("/api/ask/stream", tags=["answers"], response_class=StreamingResponse)
    async def ask_stream(body: AskRequest) -> StreamingResponse:
        """Server-Sent Events: `delta` events ({"text"}), then one `answer` event with the whole Answer."""
        events = service.astream(body.question, _turns(body.history))
        first = await _first(events)  # errors before the first byte (empty question, busy) become a status code
        return _sse(_ask_events(first, events))

    @router.get("/api/search", tags=["search"])
    async def search(
        q: Annotated[str, Query(min_length=1, max_length=2000, description="The question or keywords.")],
        k: Annotated[int, Query(ge=1, le=50, description="How many passages.")] = 5,
    ) -> dict[str, Any]:
        """The k best passages (hybrid BM25 + dense search), as `coopbot search --json` prints them."""
        return {"query": q, "hits": [hit_to_dict(h) for h in await service.asearch(q, k)]}

    @router.get("/api/documents", tags=["documents"])
    def documents() -> dict[str, Any]:
        """Every indexed document: file, title, chunk count, when it was last indexed."""
        return {"documents": [asdict(d) for d in service.knowledge.list()]}

    @app.post("/api/documents", tags=["documents"], dependencies=[Depends(admin)])
    def upload(file: Annotated[UploadFile, File(description=_UPLOAD_FILE_HELP)]) -> dict[str, Any]:
        """Add or replace a document in the knowledge dir and index it (admin token)."""
        data = file.file.read(int(settings.server.max_upload_mb * 1024 * 1024) + 1)
        name, report = service.knowledge.add(file.filename or "", data)
        return {"doc_id": name, "report": ingest_report_to_dict(report)}

    @app.delete("/api/documents/{doc_id:path}", tags=["documents"], dependencies=[Depends(admin)])
    def delete(doc_id: str) -> dict[str, Any]:
        """Remove a document from the index and, when it lives in the knowledge dir, its file (admin token)."""
        return {"doc_id": doc_id, "chunks_removed": service.knowledge.delete(doc_id)}

    @app.post("/api/reindex", tags=["documents"], dependencies=[Depends(admin)])
    def reindex(force: bool = False) -> dict[str, Any]:
        """Bring the index in step with the knowledge dir; `force` rebuilds it from scratch (admin token)."""
        return {"report": ingest_report_to_dict(service.knowledge.update(force=force))}

    @app.post("/api/embed-token", tags=["embedding"])
    async def embed_token(
        body: EmbedTokenRequest, request: Request, authorization: Annotated[str | None, Header()] = None
    ) -> dict[str, Any]:
        """Mint a short-lived token for `/embed` (call from the portal's backend with an API key)."""
        service.guard.check_mint(bearer(authorization))
        token = service.guard.mint_embed_token(body.subject, body.ttl, origin=body.origin)
        return {
            "token": token.token,
            "expires_at": token.expires_at,
            "embed_url": str(request.base_url).rstrip("/") + f"/embed/?token={token.token}",
        }

    @router.get("/v1/models", tags=["openai"])
    async def models() -> dict[str, Any]:
        """The one model this server answers as (OpenAI format)."""
        return {"object": "list", "data": [{"id": MODEL_NAME, "object": "model", "created": 0, "owned_by": "coopbot"}]}

    @router.post("/v1/chat/completions", tags=["openai"], response_model=None)
    async def chat_completions(body: ChatCompletionRequest) -> dict[str, Any] | StreamingResponse:
        """OpenAI-compatible chat; citations travel in a top-level `citations` field (streaming: in the last chunk)."""
        question, history = _openai_turns(body.messages)
        completion_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        created = int(time.time())
        if body.stream:
            events = service.astream(question, history)
            first = await _first(events)
            return _sse(_completion_chunks(completion_id, created, first, events), done=True)
        final = await service.aask(question, history)
        return {
            "id": completion_id,
            "object": "chat.completion",
            "created": created,
            "model": MODEL_NAME,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": final.text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
            **_citation_fields(final),
        }

    app.include_router(router)

    @app.api_route("/api/{rest:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"], include_in_schema=False)
    @app.api_route("/v1/{rest:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"], include_in_schema=False)
    async def unknown(rest: str, request: Request) -> None:
        """Unknown API paths get the API's JSON 404 (not the web page's)."""
        raise ApiError(404, "not_found", f"没有这个接口：{request.method} {request.url.path}（见 /docs）")

    return app


# -- helpers ------------------------------------------------------------------------------------------


def _turns(history: list[ChatMessage]) -> list[Turn]:
    return [Turn(m.role, m.content) for m in history if m.role in ("user", "assistant")]


def _openai_turns(messages: list[OpenAIMessage]) -> tuple[str, list[Turn]]:
    """The last user message is the question; earlier user/assistant messages are the history."""
    turns = [Turn(m.role, m.text()) for m in messages if m.role in ("user", "assistant")]
    if not turns or turns[-1].role != "user":
        raise ApiError(422, "no_question", "messages 的最后一条必须是 user 消息（要回答的问题）。")
    return turns[-1].content, turns[:-1]


def _citation_fields(answer: Answer) -> dict[str, Any]:
    """What /v1/chat/completions adds to the OpenAI format: `citations`, and `coopbot` (refusal, related...)."""
    data = answer.to_dict()
    return {
        "citations": data["citations"],
        "coopbot": {key: data[key] for key in ("refused", "related", "backend", "query", "notices", "support")},
    }


def _sse(events: AsyncIterator[tuple[str, Any]], done: bool = False) -> StreamingResponse:
    async def encode() -> AsyncIterator[str]:
        try:
            async for name, data in events:
                payload = json.dumps(data, ensure_ascii=False)
                yield f"event: {name}\ndata: {payload}\n\n" if name else f"data: {payload}\n\n"
        except Exception as exc:  # after the first byte the status is sent: report in-band
            message = store_message(exc) if isinstance(exc, StoreError) else str(exc)
            yield f"event: error\ndata: {json.dumps(error_body('stream_failed', message), ensure_ascii=False)}\n\n"
        if done:
            yield "data: [DONE]\n\n"

    return StreamingResponse(
        encode(), media_type="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    )


async def _first(events: AsyncGenerator[AnswerEvent, None]) -> AnswerEvent:
    """The first event of an answer stream; one that fails before it is closed (its slot freed) and raises."""
    try:
        return await anext(events)
    except BaseException:
        await events.aclose()
        raise


async def _chain(first: AnswerEvent, events: AsyncGenerator[AnswerEvent, None]) -> AsyncIterator[AnswerEvent]:
    """`first`, then the rest; the stream is closed however this ends (a client that went away included)."""
    async with contextlib.aclosing(events):
        yield first
        async for event in events:
            yield event


async def _ask_events(first: AnswerEvent, events: AsyncGenerator[AnswerEvent, None]) -> AsyncIterator[tuple[str, Any]]:
    async for event in _chain(first, events):
        match event:
            case Final(answer):
                yield "answer", answer.to_dict()
            case Delta(text) if text:
                yield "delta", {"text": text}


async def _completion_chunks(
    completion_id: str, created: int, first: AnswerEvent, events: AsyncGenerator[AnswerEvent, None]
) -> AsyncIterator[tuple[str, Any]]:
    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, Any]:
        return {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": MODEL_NAME,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            **extra,
        }

    yield "", chunk({"role": "assistant", "content": ""})
    async for event in _chain(first, events):
        match event:
            case Final(answer):
                yield "", chunk({}, "stop", **_citation_fields(answer))
            case Delta(text) if text:
                yield "", chunk({"content": text})
