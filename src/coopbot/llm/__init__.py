"""Language models behind one seam: `base.Generator`, made by `factory.make_generator`.

Backends: `openai` (any OpenAI-compatible endpoint), `local` (a GGUF served by a llama.cpp process
that `process` supervises, spoken to through the same client), `langchain` (any LangChain chat
model). `models` assembles and verifies the offline GGUF; `check` proves it runs on this machine.
This package knows nothing of passages or citations: that is `coopbot.answering`. Imports only `text`,
`schema` and `config`.
"""
