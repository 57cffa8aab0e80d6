"""Sending one request the way the server wants it: client-side budgets (--rpm-limit,
--tpm-limit), rate-limited answers retried when the provider says (--max-retries), and the
compatibility fallbacks learnt from a first rejection, each said once and kept for the run:
``stream_options`` asked for in order usage on every chunk (``continuous_usage_stats``: exact
tokens per chunk), usage at the end (``include_usage``: exact totals), nothing, since many servers
(TGI, Ollama, LM Studio...) reject ``stream_options`` and some that take ``include_usage`` reject
the vLLM extension; and ``max_tokens`` -> ``max_completion_tokens`` for reasoning models.

The exchange returned is the attempt that counts: its latency is that attempt's alone; the time
spent waiting for a budget or a retry is carried beside it (Exchange.attempt_info), never inside.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from time import perf_counter
from typing import Any

from loadtest.client.media import transcription_body
from loadtest.client.payloads import build_body, request_path
from loadtest.client.pooling import pooled_tokens
from loadtest.client.ratelimit import ClientLimits, impossible_tpm, sleep
from loadtest.client.retry import RetryPolicy
from loadtest.config import RunConfig
from loadtest.errors import ConfigError
from loadtest.measure.chunks import error_message
from loadtest.prompts.sources import Prompt
from loadtest.tokens import Tokenizer, estimator_for
from loadtest.transport import Exchange, Transport
from loadtest.transport.base import AttemptInfo


def rejects_max_tokens(message: str) -> bool:
    """OpenAI's answer to max_tokens on o-series / GPT-5 models ("Unsupported parameter:
    'max_tokens' ... Use 'max_completion_tokens' instead.")."""
    return "max_tokens" in message and "max_completion_tokens" in message


def request_tokens(cfg: RunConfig, prompt: Prompt, count: Callable[[str], int] | None) -> int:
    """What a provider charges a request against its token limit: prompt + max tokens."""
    if prompt.inputs is not None and cfg.pooled:  # nothing generated: every text, pair by pair
        return pooled_tokens(prompt, cfg.api, count) if count else 0
    asked = prompt.max_tokens if prompt.max_tokens is not None else cfg.max_tokens
    return (count(prompt.text) if count else 0) + asked


def check_budgets(cfg: RunConfig, prompts: Sequence[Prompt], tokenizer: Tokenizer | None = None) -> None:
    """Refuse, before the run, a --tpm-limit that the largest request could never fit in (it would
    wait forever, silently). (Zero, negative and non-finite limits are refused with the options.)"""
    if not cfg.tpm_limit or not prompts:
        return
    count = (tokenizer or estimator_for(cfg.model)).count
    largest = max(request_tokens(cfg, p, count) for p in prompts)
    if (why := impossible_tpm(cfg.tpm_limit, largest)) is not None:
        raise ConfigError(why)


class Sender:
    def __init__(self, cfg: RunConfig, transport: Transport, *, note: Callable[[str], None],
                 tokenizer: Tokenizer | None = None) -> None:
        self.cfg = cfg
        self.transport = transport
        self.path = request_path(cfg)
        self.note = note
        self.include_usage = cfg.stream and cfg.api not in ("responses", "messages")  # these always send usage
        self.stream_options_rejected = False
        self.continuous_usage = self.include_usage
        self.continuous_rejected = False
        self.max_completion_tokens = False
        self.ignore_eos_rejected = False
        self.policy = RetryPolicy(max_retries=cfg.max_retries, seed=cfg.seed)
        self.limits = ClientLimits(cfg.rpm_limit, cfg.tpm_limit)
        self._count = (tokenizer or estimator_for(cfg.model)).count if cfg.tpm_limit else None
        self._bases: tuple[tuple[int, bool, bool], dict[str, Any]] | None = None
        self.provider_limits: dict[str, str] = {}  # the latest x-ratelimit-limit-* the provider stated

    def estimate_tokens(self, prompt: Prompt) -> int:
        """What a provider charges a request against its token limit: prompt + max tokens."""
        return request_tokens(self.cfg, prompt, self._count)

    def _base(self, base: dict[str, Any]) -> dict[str, Any]:
        renamed = self.max_completion_tokens and "max_tokens" in base
        dropped = self.ignore_eos_rejected and "ignore_eos" in base
        if not renamed and not dropped:
            return base
        key = (id(base), renamed, dropped)
        if self._bases is None or self._bases[0] != key:
            adapted = {("max_completion_tokens" if k == "max_tokens" and renamed else k): v for k, v in base.items()
                       if not (dropped and k == "ignore_eos")}
            self._bases = (key, adapted)
        return self._bases[1]

    async def send(self, prompt: Prompt, base: dict[str, Any], abandon_after_s: float | None = None,
                   headers: dict[str, str] | None = None, affinity: object | None = None) -> Exchange:
        """``abandon_after_s`` (--cancel-after, for the requests client/abandon.py picks): each
        attempt is let go that long after its own start, the transport closing its connection.
        ``headers``: the request's own (a session's --session-header), on every attempt.
        ``affinity``: a session's key, so its turns share one kept-alive connection."""
        cfg, post = self.cfg, self.transport.post
        info = AttemptInfo()
        usage, continuous = self.include_usage, self.continuous_usage
        fell_back: str | None = None  # the rejection that made this request ask for less usage
        dropped_continuous = False
        tokens = self.estimate_tokens(prompt) if self.limits.enabled else 0
        first = -1.0  # when the first attempt started: the request's budget counts from it
        while True:
            if self.limits.enabled:
                waited = await self.limits.acquire(tokens)
                info.limit_wait_s = (info.limit_wait_s or 0.0) + waited
            used = self._base(base)
            sent = headers
            if cfg.api == "transcriptions":  # an audio upload, framed as multipart/form-data (client/media.py)
                body, sent = transcription_body(prompt, used, include_usage=usage, continuous_usage=continuous,
                                                headers=headers)
            else:
                body = build_body(prompt, used, api=cfg.api, include_usage=usage, continuous_usage=continuous)
            if first < 0:
                first = perf_counter()
            ex = await (post(self.path, body, cfg.timeout_s, abandon_after_s, sent, affinity)
                        if sent or affinity is not None else post(self.path, body, cfg.timeout_s, abandon_after_s))
            info.attempts += 1
            if ex.limit_headers:
                self._note_limits(ex.limit_headers)
            status = ex.status or 0
            if ex.error_kind is None and status in (400, 422):
                message = error_message(ex.body())
                if "max_tokens" in used and rejects_max_tokens(message):  # (requests in flight at the switch too)
                    if not self.max_completion_tokens:
                        self.max_completion_tokens = True
                        self.note(f"server rejected max_tokens ({message}); sending max_completion_tokens for the run")
                    continue
                if "ignore_eos" in used and "ignore_eos" in message:  # e.g. transformers serve (422)
                    if not self.ignore_eos_rejected:
                        self.ignore_eos_rejected = True
                        self.note(f"server rejected ignore_eos ({message}); sending without it for the run "
                                  "(completions may then stop early: records say stopped_early)")
                    continue
                if continuous:  # ask for less: usage at the end only
                    continuous, dropped_continuous, fell_back = False, True, message
                    continue
                if usage:  # then no stream_options at all
                    usage, fell_back = False, message
                    continue
            if self.policy.rate_limited(ex):
                info.rate_limited += 1
                if info.rate_limited > self.policy.max_retries:  # (--no-retry: as asked, nothing to add)
                    if self.policy.max_retries:
                        info.gave_up = f"still rate limited after --max-retries {self.policy.max_retries}"
                    break
                delay, said = self.policy.delay_s(ex, info.rate_limited), self.policy.said_s(ex)
                left = cfg.timeout_s - (perf_counter() - first)
                if (said if said is not None else delay) > left:  # the budget: --timeout from the first attempt
                    asked = (f"server asked to wait {said:g} s" if said is not None
                             else f"the backoff before retry {info.rate_limited} is {delay:.3g} s")
                    info.gave_up = (f"{asked}, more than the {max(left, 0.0):.3g} s left of the request's budget "
                                    f"(--timeout {cfg.timeout_s:g} s from its first attempt): not retried")
                    break
                t_wait = perf_counter()
                try:
                    info.retry_wait_s += await sleep(delay)
                except asyncio.CancelledError as exc:  # the run stopped during the wait: the record keeps it
                    info.retry_wait_s += perf_counter() - t_wait
                    exc.attempt_info = info  # type: ignore[attr-defined]
                    raise
                continue
            break
        if fell_back and ex.status is not None and ex.status < 400:
            self._learn(usage, dropped_continuous, fell_back)
        ex.attempt_info = info
        return ex

    def _learn(self, usage: bool, dropped_continuous: bool, message: str) -> None:
        """A retry with less stream_options succeeded: send only that for the rest of the run."""
        if dropped_continuous and self.continuous_usage:
            self.note(f"server rejected stream_options.continuous_usage_stats ({message}); sending include_usage "
                      "only (tokens per chunk are then counted after the run)")
            self.continuous_usage, self.continuous_rejected = False, True
        if not usage and self.include_usage:
            self.note(f"server rejected stream_options ({message}); sending requests without it "
                      "(token counts fall back to --tokenizer, else to chunk counts)")
            self.include_usage = self.continuous_usage = False
            self.stream_options_rejected = True

    def _note_limits(self, headers: dict[str, str]) -> None:
        for name, value in headers.items():
            if name.startswith("x-ratelimit-limit-"):
                self.provider_limits[name.removeprefix("x-ratelimit-limit-")] = value

    def run_info(self) -> dict[str, Any]:
        """The run-level facts summary.json's ``run`` block gets from the sender. (Wait and 429
        totals are in ``metrics``/``counts``, summed from the measured records, warm-up excluded.)"""
        return {
            "stream_options_sent": self.include_usage if self.cfg.stream else False,
            "stream_options_rejected": self.stream_options_rejected,
            "continuous_usage_sent": self.continuous_usage if self.cfg.stream else False,
            "continuous_usage_rejected": self.continuous_rejected,
            "max_completion_tokens_sent": self.max_completion_tokens,
            "ignore_eos_rejected": self.ignore_eos_rejected,
            "provider_limits": self.provider_limits or None,  # e.g. {"requests": "500", "tokens": "30000"}
        }
