"""Answering with a model: the prompt it reads, the citations code attaches, the stream it becomes.

`prompt` fits the passages' best sentences into a token budget; `citations` cuts the model's text
into sentences and gives each its checked `[n]`; `generate` runs one answer through a
`coopbot.llm` generator. The refusal gate and the extractive composer are still in `coopbot.answer`.
"""
