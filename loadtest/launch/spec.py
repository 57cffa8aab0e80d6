"""How to start an engine: the options ``--launch`` and ``loadtest serve ENGINE`` take, as one
config object the launcher, the engine command builders and the CLI share."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

TGI_IMAGE = "ghcr.io/huggingface/text-generation-inference:3.3.5"


@dataclass
class LaunchSpec:
    engine: str
    model: str | None = None          # None/"smollm2" -> the embedded SmolLM2 GGUF
    host: str = "127.0.0.1"
    port: int | None = None           # None -> a free port
    threads: int | None = None        # default: os.cpu_count()
    slots: int | None = None          # parallel sequences (llama.cpp -np); default 4 for llama.cpp
    ctx_size: int = 2048              # per slot
    gpu_layers: int | None = None     # llama.cpp -ngl
    dtype: str | None = None          # transformers/vllm
    attn_implementation: str | None = None  # transformers: eager|sdpa|...
    compile: bool = False             # transformers: torch.compile'd forward
    tensor_parallel_size: int | None = None
    max_model_len: int | None = None
    gpu_memory_utilization: float | None = None
    tgi_image: str = TGI_IMAGE
    extra_args: list[str] = field(default_factory=list)  # passed through to the engine
    log_dir: Path = Path(".")
    ready_timeout_s: float | None = None
    variant: str | None = None        # llama.cpp: auto|llama-server|xllamacpp|llama-cpp-python
    stop_grace_s: float = 10.0        # SIGTERM -> SIGKILL
    embeddings: bool = False          # serve embeddings/rerank (llama.cpp --embeddings, vLLM --runner pooling)
    pooling: str | None = None        # llama.cpp --pooling with embeddings: mean, cls, last, rank, none
