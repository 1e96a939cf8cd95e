"""The web face: one FastAPI server with the HTTP API and the Gradio pages, auth and feedback.

Calls the core through `Service`; never imports `cli` or `evals`' command code, and the core never imports it.
"""
