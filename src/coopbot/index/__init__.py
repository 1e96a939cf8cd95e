"""The index: the embedding model, the Chroma collection and the BM25 index over the same chunks.

Imports only `text`, `schema` and `config`; the only room that knows Chroma. The rest of coopbot goes
through `hybrid.HybridIndex`, which alone keeps the collection and BM25 equal.
"""
