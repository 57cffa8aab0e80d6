"""The definitions of the workloads beyond single-turn requests (multi-turn sessions, agentic tool
loops, embeddings and rerank, repeated runs), in words. Part of measure/definitions.py's
DEFINITIONS, which lists them after the others: written into each summary.json and quoted verbatim
by docs/metrics.md (a test keeps the two in step)."""

from __future__ import annotations

WORKLOAD_DEFINITIONS: dict[str, str] = {
    "session_fields": (
        "Per request, in multi-turn runs (--turns, --multi-turn): session_id (the session's stable id, sent "
        "in --session-header), turn (0-based index in its session) and think_s (the seeded exponential "
        "pause, mean --think-time, between the previous turn's reply and this turn's start; null on turn 0). "
        "A turn's latencies time its own request only: think time is never inside them. scheduled_s and "
        "queue_s are the first turn's alone (later turns start when the previous reply and the pause end)."),
    "sessions": (
        "summary.sessions, over the measured turns of multi-turn runs: sessions (sessions with a measured "
        "turn), sessions_with_failed_turn (a failed turn ends its session; cancelled turns excluded); "
        "by_turn, one entry per turn index: requests, ok, ttft_s_p50, ttft_s_mean, e2e_s_mean, "
        "prompt_tokens_mean and cached_tokens_mean of that turn's completed requests (the history grows "
        "with each turn; a prefix cache serves the earlier turns); duration_s: statistics over sessions of "
        "first turn start to last completed turn end, think time included; turns_ok: statistics of "
        "completed turns per session. With --tools a turn's tool rounds (tool_round > 0) are not turns: they "
        "count only in their session's duration and failures."),
    "tool_fields": (
        "Per request, in tool-loop runs (--tools): tool_round (0: the request that sends the user turn; k: the "
        "k-th request that answers the previous reply's tool calls, each call with the canned result of "
        "--tool-result-tokens tokens), tool_calls (the calls this reply made, assembled from the streamed "
        "deltas by index; 0: a final answer; null: the request failed) and tool_wait_s (the pause before this "
        "round, --tool-latency as the timer really slept; null on round 0). Each request's latencies time that "
        "request only: the pause is never inside them. Argument pieces are generated text: they end TTFT and "
        "count as tokens like content."),
    "tools": (
        "summary.tools, over the measured requests of a --tools run; a task is one user turn and the tool "
        "rounds answering it. tasks; tasks_completed (the last reply called no tool), tasks_failed (a request "
        "failed; cancelled and abandoned ones excluded), tasks_at_max_rounds (still calling tools after "
        "--max-tool-rounds rounds: cut off); tool_calls (all calls made); requests_per_task: statistics of "
        "requests per task; loop_latency_s: statistics over completed tasks of first request start to last "
        "reply end, the tool pauses included (what the task's user waits); by_round, one entry per round: "
        "requests, ok, ttft_s_p50, ttft_s_mean, e2e_s_mean and prompt_tokens_mean of its completed requests. "
        "With it: the tools offered (names), source, max_tool_rounds, tool_latency_s, tool_result_tokens "
        "(the canned result's count by tool_result_tokenizer; tool_result_verified_by_server_tokenize says "
        "whether that was the server's own /tokenize)."),
    "embeddings_and_rerank": (
        "--api embeddings and --api rerank generate nothing: each request is one JSON answer, never streamed, "
        "so e2e_s (request start to the answer's last byte) is its only latency and ttft_s, tpot_s, itl_s, "
        "completion_tokens and tokens_per_s are null (not measured, never 0). A --slo on ttft, tpot or itl is "
        "refused for them; latency objectives (e2e) and goodput apply. An answer that does not match its request "
        "(embeddings: not one vector per input with indexes 0..n-1, or an empty vector; rerank: a result index "
        "outside the documents or repeated, or no relevance_score) fails as 'malformed'."),
    "inputs": (
        "Per request (--api embeddings): the texts it sent and got one embedding each for (--batch-size); "
        "embedding_dim: floats in the first returned vector (a JSON list, or base64 float32 with "
        "--encoding-format base64). inputs_per_s: sum of inputs over completed measured requests / window_s."),
    "documents": (
        "Per request (--api rerank): the documents scored against its one query (--documents), whatever top_n "
        "the answer was cut to. documents_per_s: sum of documents over completed measured requests / window_s."),
    "prompt_tokens_per_s": (
        "Sum of prompt_tokens over completed measured requests / window_s; null when no request reported any. "
        "For embeddings and rerank prompt_tokens is usage.prompt_tokens, else usage.total_tokens, else Cohere's "
        "meta.billed_units.input_tokens (token_source 'usage'), else the --tokenizer's count of every input, or of "
        "every (query, document) pair as a cross-encoder reads them (token_source 'tokenizer'), else null."),
    "repeat": (
        "--repeat N: the group's summary.json (DIR/summary.json; each run is DIR/rep-k, complete). Its "
        "counts, errors and per-request statistics (ttft_s, e2e_s... and their percentiles) are pooled over "
        "every measured request of every run; completion_tokens_total and the other totals, and window_s, "
        "are summed; every other run-level number (requests_per_s, output_tokens_per_s...) is the mean over "
        "runs. The repeat block: n (runs asked), runs (completed and counted; an interrupted run is left out), "
        "dirs, seeds (with vary_seed, rep k ran with seed + k - 1), and metrics: per run-level number and per "
        "statistic NAME.STAT (mean, p50, p90, p99) of each per-request metric, over the runs: n, mean, std "
        "(sample, n - 1), cv (std / mean), ci_low/ci_high (mean -/+ half_width, half_width = t(0.975, n - 1) * "
        "std / sqrt(n), Student's t), half_width_pct (100 * half_width / mean) and the values. A metric no run "
        "measured is absent; one some runs lack is taken over those that have it. With --until-ci PCT: "
        "ci_metric, min_runs (3), converged (the half width fell under PCT% of the mean) and converged_after "
        "(the run it did), ci_half_width_pct at the end. verdict: every label any run got (by_repeat: each "
        "run's); slo: met when every run met it, run-level values and goodput the mean over runs."),
}
