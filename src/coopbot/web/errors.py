"""How the web faces word failures: the API's JSON errors, and the Chinese message for an unusable index.

Every core error maps to a status here, in one place, so the API never answers a bare 500: a store that
cannot be reached or read is a 503 that says what is wrong and what to do (`store_unavailable`), a full
answer line a 503 with Retry-After (`busy`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from coopbot.index.chroma import StoreError, StoreUnavailable

if TYPE_CHECKING:
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse

    from coopbot.web.service import Service

# What a reader of the chat sees; the cause and the fix (paths, commands) go to the API body, /healthz and the log.
STORE_MESSAGES = {
    "unreachable": "暂时连不上知识库的索引服务器（Chroma），现在无法检索和回答。请稍后再试；"
    "管理员请确认 Chroma 服务器正在运行。",
    "damaged": "知识库的索引数据库已损坏，现在无法检索和回答。管理员需要移走损坏的索引并重建"
    "（原因和做法见服务器日志或 /healthz）。",
    "unreadable": "暂时无法读取知识库的索引，现在无法检索和回答。请稍后再试；如果一直如此，请管理员查看服务器日志。",
}
STORE_RETRY_AFTER = {"unreachable": 5, "unreadable": 5, "damaged": 60}


class ApiError(Exception):
    """An error with its HTTP status and a stable code, rendered as JSON."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, **extra}}


def store_message(exc: StoreError) -> str:
    """The index cannot be used: a Chinese sentence for the chat (no paths, no commands)."""
    if isinstance(exc, StoreUnavailable):
        return STORE_MESSAGES[exc.kind]
    return f"知识库的索引现在不能使用：{exc}"


def store_error_body(exc: StoreError) -> dict[str, Any]:
    """The JSON error for an unusable index: the message, and the cause and what to do."""
    if isinstance(exc, StoreUnavailable):
        return error_body("store_unavailable", store_message(exc), kind=exc.kind, cause=exc.what, hint=exc.hint)
    return error_body("store_error", store_message(exc), cause=str(exc))


def add_error_handlers(app: FastAPI, service: Service) -> None:
    """Map each core error to its status and JSON body."""
    from fastapi import Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException as StarletteHTTPException

    from coopbot.assistant import QuestionError
    from coopbot.ingest.documents import DocumentError
    from coopbot.ingest.pipeline import NothingIndexedError
    from coopbot.web.admission import Busy
    from coopbot.web.auth import AuthError

    def respond(status: int, code: str, message: str) -> JSONResponse:
        return JSONResponse(error_body(code, message), status_code=status)

    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return respond(exc.status, exc.code, exc.message)

    @app.exception_handler(AuthError)
    async def auth_error(_: Request, exc: AuthError) -> JSONResponse:
        response = respond(exc.status, exc.code, str(exc))
        if exc.status == 401:
            response.headers["WWW-Authenticate"] = "Bearer"
        if exc.retry_after:
            response.headers["Retry-After"] = str(exc.retry_after)
        return response

    @app.exception_handler(QuestionError)
    async def question_error(_: Request, exc: QuestionError) -> JSONResponse:
        return respond(400, "bad_question", str(exc))

    @app.exception_handler(DocumentError)
    async def document_error(_: Request, exc: DocumentError) -> JSONResponse:
        return respond(exc.status, "bad_document", str(exc))

    @app.exception_handler(NothingIndexedError)
    async def nothing_indexed(_: Request, exc: NothingIndexedError) -> JSONResponse:
        return respond(400, "nothing_indexed", str(exc))

    @app.exception_handler(Busy)
    async def busy(_: Request, exc: Busy) -> JSONResponse:
        headers = {"Retry-After": str(exc.retry_after)}
        return JSONResponse(error_body("busy", str(exc)), status_code=503, headers=headers)

    @app.exception_handler(StoreError)
    async def store_error(_: Request, exc: StoreError) -> JSONResponse:
        if isinstance(exc, StoreUnavailable):
            service.probe.failed(exc)
        retry = STORE_RETRY_AFTER.get(exc.kind, 5) if isinstance(exc, StoreUnavailable) else 30
        return JSONResponse(store_error_body(exc), status_code=503, headers={"Retry-After": str(retry)})

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        for error in exc.errors():
            where = ".".join(str(part) for part in error.get("loc", ()) if part != "body") or "body"
            problems.append(f"{where}: {error.get('msg', 'invalid')}")
        return respond(422, "invalid_request", "请求格式不正确：" + "；".join(problems))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return respond(exc.status_code, "http_error", str(exc.detail))

    @app.exception_handler(ValueError)
    async def value_error(_: Request, exc: ValueError) -> JSONResponse:
        return respond(400, "bad_request", str(exc))

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:  # logged with its traceback by Starlette
        return respond(
            500, "internal_error", f"服务器内部错误（{type(exc).__name__}）：请稍后再试，或请管理员查看服务器日志。"
        )
