"""What of ``stream_options`` the server accepts, learnt from its first rejections and kept for the run.

Asked for, in order: usage on every chunk (``continuous_usage_stats``: exact tokens per chunk), usage
at the end (``include_usage``: exact totals), nothing. Many servers (TGI, Ollama, LM Studio...)
reject ``stream_options`` with 400/422, and some that take ``include_usage`` reject the vLLM
extension: a rejected request is retried with less, and once a retry succeeds the run sends only
that. Sits between the scheduler and the transport; the runner calls :meth:`StreamOptions.post`.
"""

from __future__ import annotations

from collections.abc import Callable

from .chunks import error_message
from .transport import Exchange, Transport

BodyFor = Callable[[bool, bool], bytes]
"""(include_usage, continuous_usage) -> the request body."""


class StreamOptions:
    def __init__(self, stream: bool) -> None:
        self.stream = stream
        self.include_usage = stream
        self.continuous_usage = stream
        self.rejected = False             # stream_options as a whole
        self.continuous_rejected = False  # only continuous_usage_stats

    async def post(self, transport: Transport, path: str, body_for: BodyFor, timeout_s: float,
                   note: Callable[[str], None]) -> Exchange:
        include, continuous = self.include_usage, self.continuous_usage
        ex = await transport.post(path, body_for(include, continuous), timeout_s)
        if continuous and ex.status in (400, 422):
            retry = await transport.post(path, body_for(include, False), timeout_s)
            if retry.status is not None and retry.status < 400:
                if self.continuous_usage:
                    note(f"server rejected stream_options.continuous_usage_stats ({error_message(ex.body())}); "
                         "sending include_usage only (tokens per chunk are then counted after the run)")
                self.continuous_usage, self.continuous_rejected = False, True
            ex = retry
        if include and ex.status in (400, 422):
            retry = await transport.post(path, body_for(False, False), timeout_s)
            if retry.status is not None and retry.status < 400:
                if self.include_usage:
                    note(f"server rejected stream_options ({error_message(ex.body())}); "
                         "sending requests without it (token counts fall back to --tokenizer, else to chunk counts)")
                self.include_usage = self.continuous_usage = False
                self.rejected = True
            ex = retry
        return ex

    def run_fields(self) -> dict[str, bool]:
        """What summary.run says about it."""
        return {"stream_options_sent": self.include_usage if self.stream else False,
                "stream_options_rejected": self.rejected,
                "continuous_usage_sent": self.continuous_usage if self.stream else False,
                "continuous_usage_rejected": self.continuous_rejected}
