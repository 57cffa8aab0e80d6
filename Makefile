# loadtest: the two commands a user needs are `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
LOADTEST := $(VENV)/bin/loadtest
DEMO_DIR ?= results/demo

.PHONY: install test test-fast test-unit demo bench bench-open bench-sessions docs clean chromium

# The client's own environment (light: no engine, no torch). setup.py builds the C hot path
# (loadtest/csrc/) in place; without gcc the pure-Python path runs.
$(VENV)/.installed: pyproject.toml setup.py $(wildcard loadtest/csrc/*)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

install: $(VENV)/.installed

# Everything in tests/: unit, loopback integration, the slow tier (soak, wheel, Ray, headless browser,
# wandb, the longest loopback runs), then real engines (llama.cpp, transformers serve). CI runs this.
test: install engine-llamacpp engine-transformers chromium
	$(PY) -m pytest -q

# tests/unit and tests/integration: no real engine, no slow tier (under 2 minutes).
test-fast: install
	$(PY) -m pytest -q tests/unit tests/integration

# tests/unit alone: the pure stages, no server (seconds).
test-unit: install
	$(PY) -m pytest -q tests/unit

# Headless Chromium (Debian's package) for the test that opens `loadtest report --format html`.
chromium:
	@command -v chromium >/dev/null || (apt-get update && apt-get install -y chromium)

# A real benchmark on a real model: llama.cpp serving the embedded SmolLM2-135M (Q4_1 GGUF).
demo: install engine-llamacpp
	@echo "== loadtest single: 20 prompts, one at a time, llama.cpp + SmolLM2-135M =="
	$(LOADTEST) single --launch llamacpp --num-prompts 20 --max-tokens 128 --output $(DEMO_DIR)/single
	@echo
	@echo "== loadtest throughput: 4 in flight, 40 prompts =="
	$(LOADTEST) throughput --launch llamacpp --concurrency 4 --num-prompts 40 --max-tokens 128 --output $(DEMO_DIR)/throughput
	@echo
	@echo "results in $(DEMO_DIR)/single and $(DEMO_DIR)/throughput (summary.json, requests.jsonl, server log)"

# The client's own overhead against the test server (see docs/performance.md).
bench: install
	$(PY) benchmarks/client_overhead.py

# Open-loop accuracy: send lag and TTFT error at 500 req/s and ~50k tokens/s (docs/performance.md).
bench-open: install
	$(PY) benchmarks/open_loop.py

# Multi-turn sessions: 1,000 sessions of 5 turns against single-turn runs at the same token rate,
# client CPU per 1,000 tokens (target: ratio <= 1.10) and memory (docs/performance.md). ~8 minutes;
# `$(PY) benchmarks/sessions.py --quick` is the < 1 minute smoke test.
bench-sessions: install
	$(PY) benchmarks/sessions.py

# The generated pages (docs/cli.md from the argparse tree, the definitions in docs/metrics.md),
# regenerated from the code, then the manual as a site in site/ (strict: a broken link or anchor,
# or a page missing from mkdocs.yml's nav, fails).
docs: install
	$(PY) docs/generate.py
	$(VENV)/bin/mkdocs build --strict -d site

clean:
	rm -rf $(VENV) .venvs build site *.egg-info .pytest_cache
	find loadtest -name "*.so" -delete

include servers/engines.mk
