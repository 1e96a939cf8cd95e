"""Shared text tools, the bottom layer: sentence spans and words (jieba, the one stopword list).

Ingestion, retrieval and answering all read text the same way through these; nothing here imports
from the rest of coopbot except `textnorm`.
"""
