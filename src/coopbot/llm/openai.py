"""Any OpenAI-compatible chat endpoint, streamed over SSE with httpx.

One code path for remote and local models: DeepSeek, Qwen's compatible mode, vLLM, Ollama, and the
llama.cpp server that coopbot runs itself (`local`). A failure of any kind is a `GenerationError`.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Sequence
from typing import Any

from coopbot.config import LLMSettings
from coopbot.llm.base import GenerationError, GenerationTimeout, Message, ModelStatus, deadline_stream, estimate_tokens


def stream_chat(
    base_url: str,
    body: dict[str, Any],
    *,
    api_key: str | None,
    timeout_s: float,
    where: str,
) -> Iterator[str]:
    """The reply's text pieces from `base_url`/chat/completions, behind a deadline per piece."""
    import httpx

    url = base_url.rstrip("/") + "/chat/completions"
    headers = {"Accept": "text/event-stream"}
    if api_key is not None:
        headers["Authorization"] = f"Bearer {api_key}"

    def produce(cancel: threading.Event) -> Iterator[str]:
        timeout = httpx.Timeout(timeout_s, connect=min(timeout_s, 10.0))
        try:
            with (
                httpx.Client(timeout=timeout, trust_env=False) as client,
                client.stream("POST", url, json={**body, "stream": True}, headers=headers) as response,
            ):
                if response.status_code >= 400:
                    response.read()
                    limited = "生成接口限流，请稍后再试" if response.status_code == 429 else None
                    raise GenerationError(_http_problem(response.status_code, response.text, where), reason=limited)
                if "text/event-stream" not in response.headers.get("content-type", ""):
                    response.read()  # a server that ignores "stream": the whole reply at once
                    yield _message_content(response.text, where)
                    return
                finished = False
                for line in response.iter_lines():
                    if cancel.is_set():
                        return
                    piece, end = _sse_event(line, where)
                    if piece:
                        yield piece
                    if end is _DONE:
                        return
                    finished = finished or end is _FINISHED
                if not finished:  # neither [DONE] nor a finish_reason: the server went away mid-answer
                    raise GenerationError(f"生成接口 {where} 的回答没有正常结束（连接中断）。")
        except httpx.ConnectError as exc:
            raise GenerationError(f"无法连接生成接口 {where}：{exc}", reason="无法连接生成接口") from exc
        except httpx.TimeoutException as exc:
            reason = f"生成接口在 {timeout_s:g} 秒内没有响应"
            raise GenerationTimeout(f"生成接口 {where} 在 {timeout_s:g} 秒内没有响应。", reason=reason) from exc
        except httpx.HTTPError as exc:
            raise GenerationError(f"与生成接口 {where} 通信失败：{type(exc).__name__}: {exc}") from exc

    return deadline_stream(produce, timeout_s, what="生成接口")


class OpenAIGenerator:
    """A remote OpenAI-compatible endpoint, as configured (`openai_base_url`, `openai_model`, `openai_api_key`)."""

    name = "openai"

    def __init__(self, llm: LLMSettings) -> None:
        self.llm = llm

    def count_tokens(self, text: str) -> int:
        return estimate_tokens(text)

    def stream(self, messages: Sequence[Message], *, max_tokens: int, timeout_s: float) -> Iterator[str]:
        key = self.llm.openai_api_key
        body = {
            "model": self.llm.openai_model,
            "messages": list(messages),
            "max_tokens": max_tokens,
            "temperature": self.llm.temperature,
        }
        return stream_chat(
            self.llm.openai_base_url,
            body,
            api_key=key.get_secret_value() if key is not None else None,
            timeout_s=timeout_s,
            where=self.llm.openai_base_url,
        )

    def status(self) -> ModelStatus:
        return ModelStatus("remote", detail=self.llm.openai_base_url)

    def close(self) -> None:
        return None


def _http_problem(status: int, body: str, where: str) -> str:
    detail = body.strip().replace("\n", " ")[:200]
    if status == 429:
        return f"生成接口 {where} 限流（HTTP 429），请稍后再试：{detail}"
    if status in (401, 403):
        return f"生成接口 {where} 拒绝了请求（HTTP {status}）：请检查 COOPBOT_OPENAI_API_KEY。{detail}"
    if status == 404:
        return f"生成接口 {where} 找不到（HTTP 404）：请检查 COOPBOT_OPENAI_BASE_URL 和 COOPBOT_OPENAI_MODEL。{detail}"
    if status >= 500:
        return f"生成接口 {where} 出错（HTTP {status}）：{detail}"
    return f"生成接口 {where} 拒绝了请求（HTTP {status}）：{detail}"


_DONE, _FINISHED = object(), object()


def _sse_event(line: str, where: str) -> tuple[str, object]:
    """One server-sent event line: its text, and _DONE at [DONE] or _FINISHED with a finish_reason."""
    if not line.startswith("data:"):
        return "", None
    data = line[5:].strip()
    if data == "[DONE]":
        return "", _DONE
    try:
        event = json.loads(data)
    except json.JSONDecodeError as exc:
        raise GenerationError(f"生成接口 {where} 返回了无法解析的数据：{data[:100]}") from exc
    if isinstance(event, dict) and "error" in event:
        raise GenerationError(f"生成接口 {where} 报错：{str(event['error'])[:200]}")
    try:
        choice = event["choices"][0] if event.get("choices") else {}
        text = str((choice.get("delta") or {}).get("content") or "")
        return text, _FINISHED if choice.get("finish_reason") else None
    except (AttributeError, TypeError, KeyError, IndexError) as exc:
        raise GenerationError(f"生成接口 {where} 返回的格式不对：{data[:100]}") from exc


def _message_content(body: str, where: str) -> str:
    try:
        return str(json.loads(body)["choices"][0]["message"]["content"] or "")
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        raise GenerationError(f"生成接口 {where} 返回的格式不对：{body[:100]}") from exc
