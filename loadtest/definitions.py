"""Every metric's definition, in words. Written into each summary.json; docs/metrics.md quotes
each one verbatim (a test keeps the two in step)."""

from __future__ import annotations

DEFINITIONS: dict[str, str] = {
    "request_start": (
        "The moment the client begins a request: just before its bytes are written to an open "
        "keep-alive connection, or just before a new connection is opened when none is open (then "
        "connection set-up is inside ttft_s and e2e_s and is also reported as connect_s)."),
    "e2e_s": "Full round trip: from request start to the arrival of the last byte of the response.",
    "ttft_s": (
        "Time to first token: from request start to the arrival of the first SSE chunk that carries "
        "generated text (delta.content, reasoning_content or tool-call arguments; choices[].text for "
        "/completions). Role-only, empty and usage-only chunks do not end it. Not measured (null) "
        "without streaming."),
    "ttft_content_s": (
        "As ttft_s, but ended only by visible content (not reasoning); equal to ttft_s for "
        "non-reasoning models."),
    "completion_tokens": (
        "Generated tokens of a request: the server's usage.completion_tokens (asked for with "
        "stream_options.include_usage); without usage, the --tokenizer's count of the generated text; "
        "as a last resort the number of content chunks (token_source 'chunks', approximate). Prompt "
        "tokens never count. Reasoning tokens are part of completion_tokens and are not added again."),
    "tokens_per_s": "Per request: completion_tokens / e2e_s (the whole round trip, TTFT included).",
    "tpot_s": (
        "Time per output token after the first chunk: (arrival of the last content chunk - arrival of "
        "the first content chunk) / (completion_tokens - tokens in the first content chunk). Taken over "
        "content chunks only, so a trailing usage chunk or [DONE] cannot bias it; right when chunks "
        "carry several tokens."),
    "decode_tokens_per_s": "Per request: 1 / tpot_s (generation rate after the first chunk).",
    "itl_s": (
        "Inter-token latency, one sample per token: the gap between a content chunk and the previous "
        "content chunk is shared equally among the k tokens the later chunk carries (k from per-chunk "
        "usage when the server sends it, else the tokenizer scaled to the request's total, else the "
        "total spread evenly over content chunks). Empty chunks add no sample; tokens of the first "
        "chunk have no gap. Its token-weighted mean equals tpot_s."),
    "percentiles": (
        "Statistics over requests (ITL: over tokens): mean, population std, min, max, and p50/p90/p95/"
        "p99 by linear interpolation (ITL: token-weighted, inverted CDF). Failed, cancelled and warm-up "
        "requests are excluded."),
    "window_s": (
        "The measured window. With --num-prompts: from the start of the first measured (non-warm-up) "
        "request to the end of the last one. With --duration D: exactly D seconds from the start of the "
        "first measured request; requests still in flight then are cancelled, recorded as 'cancelled', "
        "and not counted."),
    "requests_per_s": "Completed (successful) measured requests / window_s.",
    "requests_per_min": "60 * requests_per_s.",
    "output_tokens_per_s": "Sum of completion_tokens of completed measured requests / window_s.",
    "steady_state_fit": (
        "loadtest report, per run: a Huber (robust) regression of each completed request's e2e_s on its "
        "completion_tokens; decode rate = 1 / slope (tokens/s), overhead = intercept (s: prefill, queueing, "
        "network); 95% intervals from 200 bootstrap resamples of the requests (seed 0). Needs 8 requests "
        "whose output lengths differ."),
    "cost": (
        "loadtest report: with --cost-per-hour P, $ per 1M output tokens = P / (output_tokens_per_s x 3600) "
        "x 1e6 and $ per 1,000 requests = P / (requests_per_min x 60) x 1000; with API prices, each "
        "request's prompt and completion tokens at the given $ per 1M."),
    "client_cpu_s": (
        "CPU seconds the client process used during the measured phase (user + system), and per 1,000 "
        "completion tokens: the client's own overhead, to compare with what it measures. "
        "client_cpu_user_s and client_cpu_system_s split it (system: mostly the kernel's socket reads). With "
        "--warmup 5s / --cooldown it covers those phases too (the verdict divides by all three)."),
    "queueing": (
        "None on the client in a closed loop: the scheduler never has more requests in flight than the "
        "connection pool has connections, so no request waits for one. Under --request-rate with "
        "--max-concurrency a request may wait for a slot: that wait is queue_s, outside ttft_s and e2e_s."),
    "scheduled_s": (
        "Open loop (--request-rate): when the load shape wanted the request sent, seconds since the run "
        "started. The schedule is fixed before the run from the seed (Poisson: exponential gaps; gamma: "
        "shape --burstiness, mean gap 1/rate; constant: equal gaps; --ramp-up: the rate rises linearly)."),
    "queue_s": (
        "Open loop: time a request waited for a free slot under --max-concurrency before it started "
        "(0 when a slot was free). Not part of ttft_s or e2e_s."),
    "send_lag_s": (
        "Open loop, per started request: request_start - scheduled_s - queue_s, the client's own lateness "
        "in sending. Large values mean the client, not the server, limited the load."),
    "achieved_rate_per_s": (
        "Open loop: measured requests started / the span between the first and last of their starts "
        "((n - 1) / span), to compare with the target --request-rate."),
    "phase": (
        "warmup, measured or cooldown. --warmup N: the first N requests; --warmup 5s and --cooldown S with "
        "--duration D: by scheduled (open loop) or start (closed loop) time, the run lasting 5 + D + S "
        "seconds. Only measured requests enter the statistics."),
    "slo": (
        "--slo objectives. Per request (ttft=0.5): a completed measured request meets it when its own value "
        "is at most the limit (a value not measured does not meet it). Run-level (ttft:p99=0.5): the run's "
        "statistic is at most the limit. The run meets its SLOs when every run-level objective holds and at "
        "least --slo-attainment (default 0.9) of its measured requests met every per-request objective."),
    "goodput_requests_per_min": (
        "Completed measured requests that met every per-request objective, per minute of window_s "
        "(goodput_requests_per_s per second); good_fraction is their share of the measured requests."),
    "event_loop_delay": (
        "run.monitors.event_loop_delay: how late a 5 ms ticker on the client's event loop woke during the "
        "measured phase (p50/p99/max): a delay any arrival stamp taken then could have suffered."),
    "host_cpu": (
        "run.monitors.host_cpu: the host's CPU in cores (1.0 = one core busy) over the measured phase, "
        "sampled every 0.25 s: host_busy (all non-idle time), client (this process), server (the process "
        "listening on the endpoint's port when it is on this host, and its tree as found before the run), "
        "others = host_busy - client - server, never below 0."),
    "verdict": (
        "Whether the measurement is valid. client_bound: open-loop send_lag_s p99 > 10 ms, event_loop_delay "
        "p99 > 10 ms, or client CPU (client_cpu_s / window_s) > 0.9 cores. disturbed: host_cpu others mean "
        "> 0.5 cores (null when the host was not sampled). server_saturated: open loop, requests_per_s < 0.9 "
        "x the lower of the target rate and achieved_rate_per_s."),
}


def markdown() -> str:
    """The definitions block of docs/metrics.md (a test checks the doc matches)."""
    return "\n".join(f"- **`{name}`**: {text}" for name, text in DEFINITIONS.items()) + "\n"


def rewrite_doc(path: str) -> None:
    """Replace the generated block of docs/metrics.md with the current definitions."""
    from pathlib import Path

    doc = Path(path)
    head, rest = doc.read_text().split("-->\n", 1)
    tail = rest.split("<!-- definitions:end -->", 1)[1]
    doc.write_text(head + "-->\n" + markdown() + "<!-- definitions:end -->" + tail)


if __name__ == "__main__":
    import sys

    if sys.argv[1:2] == ["--write"]:
        rewrite_doc(sys.argv[2])
    else:
        print(markdown(), end="")
