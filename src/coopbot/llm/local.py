"""The `llamacpp` backend: a local GGUF served by a model process that coopbot supervises.

The app speaks to it with the same OpenAI-compatible client as to any remote endpoint
(`openai.stream_chat`); only starting, watching and restarting the process is local. The process
starts when the backend is made (at server start, so the first question does not pay the load),
and keeps llama.cpp's context between requests: the fixed system prompt is read once and every
answer reuses it as a matching prefix.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

from coopbot.config import Settings
from coopbot.llm.base import Message, ModelStatus, estimate_tokens
from coopbot.llm.openai import stream_chat
from coopbot.llm.process import ModelServer, llama_server_args


def model_server(model_path: Path, settings: Settings, *, max_failed_starts: int = 3) -> ModelServer:
    """The supervised llama.cpp server for `model_path`, configured from the settings (not started)."""
    from coopbot.llm.models import check_gguf

    threads = settings.llm_threads or os.cpu_count() or 1
    return ModelServer(
        llama_server_args(model_path, threads=threads, ctx=settings.llm_ctx, verbose=settings.llm_server_log),
        start_timeout_s=settings.llm_start_timeout_s,
        log_path=settings.data_dir / "logs" / "model-server.log" if settings.llm_server_log else None,
        preflight=lambda: check_gguf(model_path),
        max_failed_starts=max_failed_starts,
    )


class LocalModelGenerator:
    """A `Generator` over the supervised model process; started on construction, stopped by `close()`."""

    name = "llamacpp"

    def __init__(self, model_path: Path, settings: Settings, server: ModelServer | None = None) -> None:
        self.model_path = model_path
        self.settings = settings
        self.server = server or model_server(model_path, settings)
        self.server.start()

    def count_tokens(self, text: str) -> int:
        """Exact, from the model's own tokenizer while the process is ready; an estimate otherwise."""
        url = self.server.url
        if url is None:
            return estimate_tokens(text)
        return _count_tokens(url, text)

    def stream(self, messages: Sequence[Message], *, max_tokens: int, timeout_s: float) -> Iterator[str]:
        body = {
            "model": self.model_path.stem,
            "messages": list(messages),
            "max_tokens": max_tokens,
            "temperature": self.settings.llm_temperature,
        }

        def run() -> Iterator[str]:
            url = self.server.wait_ready(timeout_s)
            yield from stream_chat(url, body, api_key=None, timeout_s=timeout_s, where="本地模型进程")

        return run()

    def status(self) -> ModelStatus:
        return self.server.status()

    def close(self) -> None:
        self.server.stop()


@functools.lru_cache(maxsize=4096)
def _count_tokens(base_url: str, text: str) -> int:
    import httpx

    root = base_url.removesuffix("/v1")
    with contextlib.suppress(httpx.HTTPError, ValueError, KeyError, TypeError):
        response = httpx.post(f"{root}/extras/tokenize/count", json={"input": text}, timeout=5.0, trust_env=False)
        if response.status_code == 200:
            return int(response.json()["count"])
    return estimate_tokens(text)
