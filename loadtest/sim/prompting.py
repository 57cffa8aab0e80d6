"""Prompt-side behaviour of the test server, kept apart from the HTTP layer: how prompt tokens are
counted (whitespace words by default, or a real tokenizer so a client building prompts of exact
length can be checked token for token; ``/tokenize`` then uses it too), llama.cpp's ``/props``, a chat
template's extra tokens, a context limit, and a prompt-processing speed that delays the first token
(so a sweep's timeout and skip rules can be tested on a slow server on purpose)."""

from __future__ import annotations

from typing import Any

import orjson

from loadtest.sim.config import SimConfig
from loadtest.sim.generate import RequestError, _words, message_parts

PATHS = (b"/props",)


class Prompting:
    """Built once per server from its config."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self._tok: Any = None
        if config.prompt_tokenizer:
            from loadtest.tokens import load_tokenizer

            self._tok = load_tokenizer(config.prompt_tokenizer)
        self.prefill_ns_per_token = (1e9 / config.prefill_tokens_per_s) if config.prefill_tokens_per_s else 0.0

    def tokenize(self, text: str, with_pieces: bool) -> tuple[list[int], list[str] | None]:
        """Ids (and pieces, when asked and the tokenizer decodes single tokens: tiktoken) for
        /tokenize with the prompt tokenizer; LookupError without one (sim/tokenize.py then uses the
        sim's own words)."""
        if self._tok is None:
            raise LookupError("no prompt tokenizer")
        enc = getattr(self._tok, "_enc", None)
        if enc is None:
            return list(range(self._tok.count(text))), None
        ids = list(enc.encode(text, disallowed_special=()))
        return ids, [enc.decode_single_token_bytes(i).decode("utf-8", "replace") for i in ids] if with_pieces else None

    @property
    def has_tokenizer(self) -> bool:
        return self._tok is not None

    def count(self, value: Any) -> int:
        if self._tok is None:
            return _words(value)
        if isinstance(value, str):
            return self._tok.count(value)
        if isinstance(value, list):
            return sum(self.count(v) for v in value)
        if isinstance(value, dict):
            return self.count(value.get("text"))
        return 0

    def token_keys(self, chat: bool, body: dict[str, Any]) -> list[Any]:
        """The prompt's tokens as the prefix cache keys them (sim/prefixcache.py): the prompt
        tokenizer's ids, else the whitespace words (and token ids) the sim counts; message contents
        in order. Per request, only with --prefix-cache-tokens."""
        keys: list[Any] = []
        for value in ([message_parts(m) for m in body["messages"] if isinstance(m, dict)] if chat
                      else [body.get("prompt")]):
            self._keys(value, keys)
        return keys

    def _keys(self, value: Any, out: list[Any]) -> None:
        if isinstance(value, str):
            out.extend(self._encode(value))
        elif isinstance(value, int) and not isinstance(value, bool) and self._tok is None:
            out.append(value)
        elif isinstance(value, list):
            for v in value:
                self._keys(v, out)
        elif isinstance(value, dict):
            self._keys(value.get("text"), out)

    def _encode(self, text: str) -> list[Any]:
        tok = self._tok
        if tok is None:
            return text.split()
        enc = getattr(tok, "_enc", None)  # tiktoken
        if enc is not None:
            return list(enc.encode(text, disallowed_special=()))
        hf = getattr(tok, "_tok", None)  # a Hugging Face tokenizer.json
        if hf is not None:
            return list(hf.encode(text, add_special_tokens=False).ids)
        return text.split()

    def prompt_tokens(self, chat: bool, body: dict[str, Any], words: int) -> int:
        """The prompt tokens the server reports in usage (and refuses beyond --n-ctx)."""
        n = words
        if self._tok is not None:
            n = (sum(self.count(message_parts(m)) for m in body["messages"] if isinstance(m, dict)) if chat
                 else self.count(body.get("prompt")))
        if chat:
            n += self.config.template_tokens
        limit = self.config.n_ctx
        if limit is not None:
            wanted = n + (body.get("max_tokens") or 0)
            if wanted > limit:
                raise RequestError(400, f"the request exceeds the available context size ({wanted} > {limit} tokens)",
                                   code="exceed_context_size_error")
        return n

    def prefill_ns(self, prompt_tokens: int) -> int:
        """Delay of the whole reply schedule: prompt processing at --prefill-tokens-per-s."""
        return round(prompt_tokens * self.prefill_ns_per_token)

    def timings(self, plan: Any, sent: int, prefill_ns: int) -> bytes:
        """With --timings, llama.cpp's own figures on the usage chunk (and a non-stream body), from
        the sim's schedule: the prompt phase is the true prefill, slot -> first token (--prefill-
        tokens-per-s plus --ttft-ms, never the wait for a slot), generation --tpot-ms per token
        after the first. With a prefix cache, prompt_n counts the tokens computed and cache_n the
        cached ones, as llama.cpp does."""
        c = self.config
        if not c.timings:
            return b""
        prompt_ms = prefill_ns / 1e6
        predicted_ms = max(sent - 1, 0) * c.tpot_ms
        cached = plan.cached_tokens
        computed = plan.prompt_tokens - (cached or 0)
        out = {"prompt_n": computed, "prompt_ms": prompt_ms,
               "prompt_per_second": computed / prompt_ms * 1000 if prompt_ms else None,
               "predicted_n": sent, "predicted_ms": predicted_ms,
               "predicted_per_second": (sent - 1) / predicted_ms * 1000 if predicted_ms else None}
        if cached is not None:
            out["cache_n"] = cached
        return b',"timings":' + orjson.dumps(out)

    def answer(self, method: bytes, path: bytes) -> tuple[int, bytes]:
        """(status, body) for one of PATHS; the server's HTTP layer sends it (this module knows
        nothing of connections)."""
        if path == b"/props" and method == b"GET" and self.config.n_ctx is not None:
            body = {"default_generation_settings": {"n_ctx": self.config.n_ctx}, "n_ctx": self.config.n_ctx}
            return 200, orjson.dumps(body)
        error = RequestError(404, f"Not found: {path.decode(errors='replace')}", code="not_found")
        return error.status, error.body()
