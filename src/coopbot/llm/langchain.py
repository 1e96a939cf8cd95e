"""The `langchain` backend: any LangChain chat model as the generator.

`COOPBOT_LANGCHAIN_CHAT_MODEL=langchain_openai.ChatOpenAI` with `COOPBOT_LANGCHAIN_KWARGS` (JSON)
builds the model; it streams through `.stream()`. The refusal gate runs before it and citations are
attached in code after it, exactly as for coopbot's own backends.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Iterator, Sequence
from typing import Any

from coopbot.config import LLMSettings
from coopbot.llm.base import BackendConfigError, Message, ModelStatus, deadline_stream, estimate_tokens

# Settings that most chat model classes take under these names; passed only to a class that has the field.
_COMMON = ("max_tokens", "temperature")


def load_chat_model(import_path: str, kwargs: dict[str, Any], llm: LLMSettings) -> Any:
    """Import `module.Class` and build it; a clear error naming the package when it is not installed."""
    module_name, _, class_name = import_path.rpartition(".")
    if not module_name or not class_name:
        raise BackendConfigError(
            f"COOPBOT_LANGCHAIN_CHAT_MODEL={import_path!r} is not an import path such as langchain_openai.ChatOpenAI"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        package = module_name.split(".")[0].replace("_", "-")
        raise BackendConfigError(
            f"COOPBOT_LLM=langchain needs {module_name}: pip install {package} (or choose another COOPBOT_LLM)"
        ) from exc
    cls = getattr(module, class_name, None)
    if cls is None:
        raise BackendConfigError(f"{module_name} has no {class_name}: check COOPBOT_LANGCHAIN_CHAT_MODEL")
    fields = getattr(cls, "model_fields", {})
    defaults = {name: getattr(llm, name) for name in _COMMON if name in fields}
    try:
        return cls(**{**defaults, **kwargs})
    except Exception as exc:  # pydantic validation of the model's own fields
        raise BackendConfigError(f"{import_path} could not be built from COOPBOT_LANGCHAIN_KWARGS: {exc}") from exc


class LangChainGenerator:
    """A `Generator` over a LangChain `BaseChatModel`."""

    name = "langchain"

    def __init__(self, model: Any, label: str) -> None:
        self.model = model
        self.label = label

    @classmethod
    def from_settings(cls, llm: LLMSettings) -> LangChainGenerator:
        if not llm.langchain_chat_model:
            raise BackendConfigError(
                "COOPBOT_LLM=langchain needs COOPBOT_LANGCHAIN_CHAT_MODEL, e.g. langchain_openai.ChatOpenAI"
            )
        model = load_chat_model(llm.langchain_chat_model, llm.langchain_kwargs, llm)
        return cls(model, llm.langchain_chat_model)

    def count_tokens(self, text: str) -> int:
        return estimate_tokens(text)  # a model's own counter may need a download (tiktoken): never at answer time

    def stream(self, messages: Sequence[Message], *, max_tokens: int, timeout_s: float) -> Iterator[str]:
        from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage

        kinds: dict[str, type[BaseMessage]] = {"system": SystemMessage, "user": HumanMessage, "assistant": AIMessage}
        converted = [kinds[m["role"]](content=m["content"]) for m in messages]

        def produce(cancel: threading.Event) -> Iterator[str]:
            for chunk in self.model.stream(converted):
                if cancel.is_set():
                    return
                text = _text(chunk.content)
                if text:
                    yield text

        return deadline_stream(produce, timeout_s, what=f"LangChain 模型（{self.label}）")

    def status(self) -> ModelStatus:
        return ModelStatus("remote", detail=self.label)

    def close(self) -> None:
        return None


def _text(content: Any) -> str:
    """A chunk's text: a string, or the text parts of a list of content blocks."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            part if isinstance(part, str) else str(part.get("text", ""))
            for part in content
            if isinstance(part, (str, dict))
        )
    return ""
