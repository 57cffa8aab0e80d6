"""``loadtest memory``: how much memory serving a model takes, before anyone starts it.

The rule of thumb the published tables use: parameters x bytes per parameter (FP32 4, FP16/BF16 2,
INT8 1, INT4 0.5) x 1.2 for activations, buffers and the runtime, in GB of 2^30 bytes. The
parameter count comes from a number ("7b"), from a model's architecture (config.json, counted
layer by layer so a GQA model is not over-counted), or from a GGUF file's tensor table (read from
its header, no `gguf` package needed). The KV cache, when asked for, is added exactly:
2 (K and V) x layers x KV heads x head dim x context x batch x bytes per element.
"""

from __future__ import annotations

import json
import math
import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from loadtest.errors import ConfigError

GIB = 2 ** 30
OVERHEAD = 1.2
PRECISIONS: tuple[tuple[str, float], ...] = (("FP32", 4.0), ("FP16/BF16", 2.0), ("INT8", 1.0), ("INT4", 0.5))
KV_BYTES = {"fp32": 4.0, "fp16": 2.0, "bf16": 2.0, "fp8": 1.0, "int8": 1.0, "q8_0": 1.0625, "q4_0": 0.5625}
_SUFFIX = {"": 1, "k": 1e3, "m": 1e6, "b": 1e9, "g": 1e9, "t": 1e12}


@dataclass(frozen=True)
class Architecture:
    """What the KV cache depends on."""

    layers: int
    kv_heads: int
    head_dim: int


@dataclass(frozen=True)
class ModelSize:
    name: str
    parameters: int
    source: str                       # "count", "config.json", "gguf"
    arch: Architecture | None = None

    def weights_gb(self, bytes_per_param: float) -> float:
        return self.parameters * bytes_per_param * OVERHEAD / GIB

    def kv_cache_gb(self, context: int, batch: int, bytes_per_element: float) -> float:
        if self.arch is None:
            raise ConfigError(f"{self.name}: the KV cache needs the architecture (give a config.json, "
                              "model directory or GGUF file, not a parameter count)")
        a = self.arch
        return 2 * a.layers * a.kv_heads * a.head_dim * context * batch * bytes_per_element / GIB


def parse_count(text: str) -> int | None:
    """'7b' -> 7e9, '135M' -> 135e6, '6738415616' -> itself; None when it is not a count."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?(?:e\d+)?)\s*([kmbgt]?)\s*", text.lower())
    if not m:
        return None
    value = float(m.group(1)) * _SUFFIX[m.group(2)]
    return int(round(value)) if math.isfinite(value) else None


# ---------------------------------------------------------------- config.json (llama-style)

def count_config(cfg: dict[str, Any]) -> tuple[int, Architecture]:
    """Parameters of a decoder-only transformer from its Hugging Face config: embeddings, per layer
    attention q/k/v/o (K and V sized by num_key_value_heads: GQA), the gated MLP (gate, up, down;
    times the experts for a mixture of experts), two RMSNorms, the final norm, and lm_head unless
    the embeddings are tied."""
    text = cfg.get("text_config", cfg)  # multimodal wrappers keep the language model here
    cfg = text if isinstance(text, dict) else cfg
    kind = str(cfg.get("model_type") or "")
    if kind in ENCODER_ONLY:
        raise ConfigError(f"config.json: model_type {kind or '?'} is an encoder-only model (no decoder, no KV "
                          "cache): the decoder formula this command uses does not apply; give its parameter count "
                          "instead (e.g. 110m)")
    hidden = _positive(cfg, "hidden_size")
    layers = _positive(cfg, "num_hidden_layers")
    heads = _positive(cfg, "num_attention_heads")
    inter = _positive(cfg, "intermediate_size", 4 * hidden)
    vocab = _positive(cfg, "vocab_size")
    kv_heads = _positive(cfg, "num_key_value_heads", heads)
    head_dim = _positive(cfg, "head_dim", hidden // heads or None)
    q, kv = heads * head_dim, kv_heads * head_dim
    attn = hidden * q + 2 * hidden * kv + q * hidden
    if cfg.get("attention_bias") or cfg.get("model_type") in ("qwen2", "qwen2_moe"):
        attn += q + 2 * kv
    experts = _positive(cfg, "num_local_experts", None) if cfg.get("num_local_experts") else \
        _positive(cfg, "num_experts", 1)
    expert_inter = _positive(cfg, "moe_intermediate_size", inter) if experts > 1 else inter
    mlp = experts * 3 * hidden * expert_inter + (hidden * experts if experts > 1 else 0)
    per_layer = attn + mlp + 2 * hidden
    embed = vocab * hidden
    tied = bool(cfg.get("tie_word_embeddings", False))
    total = embed + layers * per_layer + hidden + (0 if tied else vocab * hidden)
    return total, Architecture(layers, kv_heads, head_dim)


ENCODER_ONLY = ("bert", "roberta", "xlm-roberta", "distilbert", "albert", "electra", "deberta", "deberta-v2",
                "camembert", "mpnet", "modernbert", "nomic_bert", "xlm", "ernie")
"""model_type values of encoder-only models: no decoder layers, no KV cache, no lm_head."""

_FIELD_LIMIT = 2 ** 40


def _positive(cfg: dict[str, Any], key: str, default: int | None = 0) -> int:
    """A positive integer field of config.json (``default`` when absent or null; 0: required);
    ConfigError naming the field otherwise (a zero head count divided by zero, a negative layer
    count gave negative gigabytes)."""
    value = cfg.get(key)
    if value is None:
        if default:
            return default
        raise ConfigError(f"config.json lacks {key}, needed to count parameters")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value) \
            or not 0 < value <= _FIELD_LIMIT:
        raise ConfigError(f"config.json: {key} must be a positive integer, got {value!r}")
    return int(value)


# ---------------------------------------------------------------- GGUF

_SCALAR = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}


def _read(f: BinaryIO, fmt: str) -> Any:
    size = struct.calcsize(fmt)
    data = f.read(size)
    if len(data) != size:
        raise ValueError("truncated GGUF header")
    return struct.unpack(fmt, data)[0]


def _read_value(f: BinaryIO, vtype: int) -> Any:
    if vtype in _SCALAR:
        return _read(f, _SCALAR[vtype])
    if vtype == 8:
        return f.read(_read(f, "<Q")).decode("utf-8", "replace")
    if vtype == 9:
        etype, count = _read(f, "<I"), _read(f, "<Q")
        if etype in _SCALAR:  # arrays (the vocabulary) are skipped, not decoded
            f.seek(struct.calcsize(_SCALAR[etype]) * count, 1)
        else:
            for _ in range(count):
                _read_value(f, etype)
        return None
    raise ValueError(f"unknown GGUF value type {vtype}")


def read_gguf(path: Path) -> tuple[int, dict[str, Any]]:
    """(parameters, scalar metadata) of a GGUF file: the element counts of every tensor summed,
    from the tensor table after the key/value header (no tensor data is read)."""
    with open(path, "rb") as f:
        if f.read(4) != b"GGUF":
            raise ValueError("not a GGUF file")
        if _read(f, "<I") < 2:
            raise ValueError("GGUF version 1 is not supported")
        n_tensors, n_kv = _read(f, "<Q"), _read(f, "<Q")
        meta: dict[str, Any] = {}
        for _ in range(n_kv):
            key = f.read(_read(f, "<Q")).decode("utf-8", "replace")
            value = _read_value(f, _read(f, "<I"))
            if value is not None:
                meta[key] = value
        total = 0
        for _ in range(n_tensors):
            f.seek(_read(f, "<Q"), 1)  # name
            n = 1
            for _ in range(_read(f, "<I")):
                n *= _read(f, "<Q")
            f.seek(4 + 8, 1)  # type, offset
            total += n
    return total, meta


def _gguf_arch(meta: dict[str, Any]) -> Architecture | None:
    arch = meta.get("general.architecture")
    try:
        layers = int(meta[f"{arch}.block_count"])
        heads = int(meta[f"{arch}.attention.head_count"])
        kv_heads = int(meta.get(f"{arch}.attention.head_count_kv") or heads)
        head_dim = int(meta.get(f"{arch}.attention.key_length") or int(meta[f"{arch}.embedding_length"]) // heads)
    except (KeyError, TypeError, ValueError):
        return None
    return Architecture(layers, kv_heads, head_dim)


# ---------------------------------------------------------------- resolve and render

def resolve(model: str) -> ModelSize:
    """A parameter count, a config.json, a model directory holding one (or a GGUF), or a GGUF file."""
    if not model.strip():
        raise ConfigError("MODEL is empty: give a parameter count (7b), a config.json, a model directory or a GGUF file")
    path = Path(model)
    if path.is_dir():
        if (path / "config.json").is_file():
            return _from_config(path / "config.json", path.name)
        ggufs = sorted(path.glob("*.gguf"))
        if ggufs:
            return _from_gguf(ggufs[0], path.name)
        raise ConfigError(f"{model}: no config.json or .gguf file in this directory")
    if path.is_file():
        if path.suffix.lower() == ".gguf":
            return _from_gguf(path, path.stem)
        return _from_config(path, path.parent.name if path.name == "config.json" else path.stem)
    count = parse_count(model)
    if count is not None and 0 < count <= _FIELD_LIMIT * 1000:
        return ModelSize(model, count, "count")
    if model.lower() == "smollm2":
        from loadtest.launch.envs import all_pythons
        from loadtest.launch.models import find_embedded_gguf

        gguf, _ = find_embedded_gguf(all_pythons())
        return _from_gguf(gguf, "smollm2")
    raise ConfigError(f"{model!r} is not a parameter count (7b, 135m), a config.json, a model directory "
                      "or a GGUF file")


def _from_config(path: Path, name: str) -> ModelSize:
    try:
        cfg = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: cannot read it as JSON ({exc})") from None
    if not isinstance(cfg, dict):
        raise ConfigError(f"{path}: not a config.json object")
    total, arch = count_config(cfg)
    return ModelSize(name, total, "config.json", arch)


def _from_gguf(path: Path, name: str) -> ModelSize:
    try:
        total, meta = read_gguf(path)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: cannot read the GGUF header ({exc})") from None
    return ModelSize(name, total, "gguf", _gguf_arch(meta))


def _params_text(n: int) -> str:
    for div, unit in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if n >= div:
            return f"{n / div:.4g}{unit}"
    return str(n)


def memory_rows(models: list[ModelSize], *, context: int | None = None, batch: int = 1,
                kv_dtype: str = "fp16") -> list[dict[str, Any]]:
    """One row per model (and, with a context, a KV cache row and a total row), GB per precision."""
    rows: list[dict[str, Any]] = []
    for m in models:
        weights = {p: round(m.weights_gb(b), 2) for p, b in PRECISIONS}
        rows.append({"model": m.name, "parameters": m.parameters, "what": f"weights x{OVERHEAD}", **weights})
        if context:
            kv = round(m.kv_cache_gb(context, batch, KV_BYTES[kv_dtype]), 2)
            rows.append({"model": m.name, "parameters": m.parameters,
                         "what": f"KV cache ({kv_dtype}, context {context:,}, batch {batch})",
                         **{p: kv for p, _ in PRECISIONS}})
            rows.append({"model": m.name, "parameters": m.parameters, "what": "total",
                         **{p: round(weights[p] + kv, 2) for p, _ in PRECISIONS}})
    return rows


def render_memory(rows: list[dict[str, Any]], fmt: str = "table") -> str:
    if fmt == "json":
        return json.dumps(rows, indent=2)
    from tabulate import tabulate  # here: --help never pays for it

    with_kv = any(r["what"] != rows[0]["what"] for r in rows)
    headers = ["model", "parameters", *(["memory"] if with_kv else []), *(f"{p} (GB)" for p, _ in PRECISIONS)]
    body = [[r["model"], _params_text(r["parameters"]), *([r["what"]] if with_kv else []),
             *(f"{r[p]:,.2f}" for p, _ in PRECISIONS)] for r in rows]
    table = tabulate(body, headers=headers, tablefmt="github" if fmt == "markdown" else "simple",
                     disable_numparse=True, colalign=("left", "right", *(["left"] if with_kv else []),
                                                      *("right",) * len(PRECISIONS)))
    note = (f"GB = 2^30 bytes; parameters x bytes per parameter (4, 2, 1, 0.5) x {OVERHEAD} overhead"
            + ("; KV cache = 2 x layers x KV heads x head dim x context x batch x bytes" if with_kv else ""))
    return table + "\n\n" + note
