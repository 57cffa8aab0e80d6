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
        "the first content chunk) / (completion_tokens - tokens in the first content chunk, from "
        "chunk_tokens). Taken over content chunks only, so a trailing usage chunk or [DONE] cannot bias "
        "it; right when chunks carry several tokens."),
    "decode_tokens_per_s": "Per request: 1 / tpot_s (generation rate after the first chunk).",
    "itl_s": (
        "Inter-token latency, one sample per token: the gap between a content chunk and the previous "
        "content chunk is shared equally among the k tokens the later chunk carries (k from "
        "chunk_tokens). Empty chunks add no sample; tokens of the first chunk have no gap. Its "
        "token-weighted mean equals tpot_s."),
    "itl_chunk_s": (
        "Chunk-level inter-token latency, one sample per gap between consecutive content chunks of a "
        "request, whatever the chunks carried (what most other tools call ITL): exact without any token "
        "count. Equals itl_s when every chunk carries one token."),
    "chunk_tokens": (
        "Tokens credited to each content chunk of a request; they sum to completion_tokens. In order of "
        "trust (chunk_token_source): 'usage_per_chunk', the deltas of per-chunk cumulative usage (asked "
        "for with stream_options.continuous_usage_stats; dropped for the run when the server rejects it); "
        "'tokenize_endpoint', each chunk's text counted by the server's own /tokenize after the measured "
        "window (never during it) and requests.jsonl rewritten; 'tokenizer', the --tokenizer's count of "
        "each chunk's text; 'text_share', the rule: the first content chunk carries exactly one token "
        "(prefill emits one token and engines send it alone) and the rest of the total is shared over the "
        "later chunks in proportion to their text length. Whole tokens, made to sum to the total by cumulative "
        "rounding. summary.chunk_tokens_exact says whether every request's counts came from the server or "
        "a tokenizer (true) or any was estimated by the rule (false)."),
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
        "client_cpu_user_s and client_cpu_system_s split it (system: mostly the kernel's socket reads)."),
    "queueing": (
        "None on the client: the scheduler never has more requests in flight than the connection pool "
        "has connections, so no request waits for one."),
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
