"""Files -> cleaned Documents -> chunks -> the index: loaders (one reader per format), chunking, the pipeline.

Imports only `text`, `index`, `schema` and `config`; never `retrieval`, `answering`, `web`, `cli` or `evals`.
"""
