"""Passages -> an answer: whether to answer, what to say, and what each sentence may cite.

`extractive` scores the passages' sentences with the fitted sentence model and composes an answer of
quotes; `gate` turns the retrieval and the best sentences into one fitted probability and refuses below
the fitted threshold; `model` holds the logistic models and reads their weights (fitted on external
data by `benchmarks/answerability.py`); `kinds` says what kind of answer a question asks for (one
feature); `citations` holds the one citation rule and checks every quoted or generated sentence;
`prompt` fits the best sentences into a token budget and `generate` runs one answer through a
`coopbot.llm` generator. Nothing here trusts a model to cite: every `[n]` is attached and verified in
code against the passage it points at.

Imports `text`, `index` (the embedder), `llm.base`, `schema` and `config`; never `retrieval`, `ingest`,
`assistant` or a face.
"""
