"""The one place that turns `COOPBOT_LLM` into a generator; imports stay lazy, choosing loads nothing."""

from __future__ import annotations

import importlib.util
import logging

from coopbot.config import Settings
from coopbot.llm.base import BackendConfigError, Generator

log = logging.getLogger("coopbot.llm")

# llama_cpp.server and what it needs (the `server` extra of llama-cpp-python, in coopbot's `llm` extra)
_LOCAL_MODULES = ("llama_cpp", "uvicorn", "sse_starlette", "starlette_context")


def local_backend_missing() -> str | None:
    """The first module the local model process needs that is not installed, or None."""
    return next((name for name in _LOCAL_MODULES if importlib.util.find_spec(name) is None), None)


def make_generator(settings: Settings) -> Generator | None:
    """The configured backend; None means extractive."""
    match settings.llm.backend:
        case "extractive":
            return None
        case "openai":
            from coopbot.llm.openai import OpenAIGenerator

            return OpenAIGenerator(settings.llm)
        case "langchain":
            from coopbot.llm.langchain import LangChainGenerator

            return LangChainGenerator.from_settings(settings.llm)
        case "llamacpp":
            missing = local_backend_missing()
            if missing is not None:
                raise BackendConfigError(
                    f"COOPBOT_LLM=llamacpp needs {missing} (llama-cpp-python[server]): install the `llm` extra "
                    "(scripts/setup.sh, or pip install -e '.[llm]'), or choose COOPBOT_LLM=extractive"
                )
            from coopbot.llm.local import LocalModelGenerator
            from coopbot.llm.models import configured_model_path

            return LocalModelGenerator(configured_model_path(settings), settings)
        case "auto":
            return _auto(settings)


def _auto(settings: Settings) -> Generator | None:
    """The local model when it is verified and was seen answering here with this build, else extractive."""
    from coopbot.llm.check import runs_here
    from coopbot.llm.models import usable_model

    path = usable_model(settings)
    if path is None or local_backend_missing() is not None:
        return None
    verdict = runs_here(path)
    if verdict is not True:
        why = "它在这台机器上的试运行失败了" if verdict is False else "还没有在这台机器上用当前的 llama.cpp 试运行过"
        log.warning("本地模型没有启用（%s）：运行 `coopbot model prepare --llm` 检查；现在使用摘录式回答。", why)
        return None
    from coopbot.llm.local import LocalModelGenerator

    return LocalModelGenerator(path, settings)
