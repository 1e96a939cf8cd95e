"""Stand-ins for what a unit test is not about: the embedding model, a chat model, an OpenAI-style server."""
