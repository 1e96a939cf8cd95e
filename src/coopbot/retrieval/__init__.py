"""Question -> ranked passages: BM25, dense and their fusion, and follow-up questions made standalone.

Imports `index`, `llm.base`, `text`, `schema` and `config`; never `answering`, `web`, `cli` or `evals`.
"""
