"""loadtest: an OpenAI-compatible load-testing client for LLM inference servers."""

__version__ = "0.1.0"
