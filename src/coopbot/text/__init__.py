"""Shared text tools, the bottom layer: normalisation, sentence spans and words (jieba, the one stopword list).

Ingestion, retrieval and answering all read text the same way through these. Imports only `config` and
`schema`; never `index`, `ingest`, `retrieval`, `answering`, `llm` or a face.
"""
