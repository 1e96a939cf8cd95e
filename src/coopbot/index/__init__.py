"""The index: the embedding model, the Chroma collection and the BM25 index over the same chunks.

Imports only `text`, `schema` and `config`; the only room that knows Chroma.
"""
