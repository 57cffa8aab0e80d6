"""Inference engines: their own environments (pinned), start, readiness, the record of how they
were started, resource sampling, stop; and model knowledge (the memory estimator).

Import-free on purpose: the CLI reads ``ENGINES`` without loading the launcher (``launcher.py``).
"""

ENGINES = ("llamacpp", "transformers", "vllm", "tgi")
ENV_ENGINES = ("llamacpp", "transformers", "vllm")
"""The engines loadtest installs into environments of their own (TGI runs as a Docker image)."""
