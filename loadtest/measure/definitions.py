"""Every metric's definition, in words. Written into each summary.json; docs/metrics.md quotes
each one verbatim (a test keeps the two in step)."""

from __future__ import annotations

from loadtest.measure.workload_definitions import WORKLOAD_DEFINITIONS

DEFINITIONS: dict[str, str] = {
    "request_start": (
        "The moment the client begins a request: just before its bytes are written to an open "
        "keep-alive connection, or just before a new connection is opened when none is open (then "
        "connection set-up is inside ttft_s and e2e_s and is also reported as connect_s)."),
    "e2e_s": "Full round trip: from request start to the arrival of the last byte of the response.",
    "ttft_s": (
        "Time to first token: from request start to the arrival of the first SSE chunk that carries "
        "generated text (delta.content, reasoning_content or tool-call arguments; choices[].text for "
        "/completions; the Messages API's text_delta, thinking_delta or input_json_delta). Role-only, empty "
        "and usage-only chunks (message_start, a block's opening, ping) do not end it. Not measured (null) "
        "without streaming."),
    "ttft_content_s": (
        "As ttft_s, but ended only by visible content (not reasoning); equal to ttft_s for "
        "non-reasoning models."),
    "completion_tokens": (
        "Generated tokens of a request: the server's usage.completion_tokens (asked for with "
        "stream_options.include_usage); without usage, the --tokenizer's count of the generated text; "
        "as a last resort the number of content chunks (token_source 'chunks', approximate). Prompt "
        "tokens never count. Reasoning tokens are part of completion_tokens and are not added again. "
        "Messages API: usage.output_tokens of message_delta (see messages_api). A usage count that is "
        "not a token count is ignored as if absent (see usage_invalid)."),
    "usage_invalid": (
        "Per request: the fields of the server's usage that were not token counts, with their raw value "
        "cut to 40 characters. A count is a non-negative JSON integer up to 2^53 - 1 (a float with an "
        "integral value, 12.0, is taken as that integer); a string (even \"12\"), a boolean, a fraction, a "
        "negative or larger number, an object or a list is invalid, ignored, and the count falls back as "
        "without usage (completion_tokens: --tokenizer, else content chunks; token_source says which). null "
        "is absent, not invalid. summary.usage_invalid: the measured requests with any (requests), how "
        "often each field was invalid (fields), and the first seen (example); null when none."),
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
        "p99 by linear interpolation (ITL: token-weighted, inverted CDF). Failed, cancelled, abandoned and "
        "warm-up requests are excluded."),
    "window_s": (
        "The measured window. With --num-prompts: from the start of the first measured (non-warm-up) "
        "request to the end of the last one. With --duration D: exactly D seconds from the start of the "
        "first measured request; requests still in flight then are cancelled, recorded as 'cancelled', "
        "and not counted."),
    "abandoned": (
        "--cancel-rate P --cancel-after S: the share P of requests that users abandon (close the tab). Which "
        "ones is a function of (seed, request index) alone (a keyed BLAKE2b hash of the two read as a number "
        "in [0, 1), compared with P), so the same seed abandons the same requests whatever the scheduling "
        "order or the number of --workers. S seconds after its request start (but never before its request "
        "was written) the client closes the connection, and the server sees a disconnect (S = 0: at once, "
        "during prefill). The record has error_kind 'abandoned' (apart from 'cancelled', the run's own stop), "
        "abandoned_after_s (when the client let go, after the request start), ttft_s when the first token "
        "had come, and partial_tokens (tokens received). counts.abandoned counts them apart: neither completed "
        "nor failed, outside every latency statistic, the error rate, output throughput, SLO attainment and "
        "goodput. A run in which every request was abandoned measured nothing and exits 2."),
    "abandoned_tokens_received": (
        "Sum of partial_tokens over the abandoned measured requests: tokens the server sent before the client "
        "let go, never in completion_tokens_total or output_tokens_per_s."),
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
    "compare_change": (
        "loadtest compare, per metric: change = (candidate / baseline - 1) x 100 %, each side's value being the "
        "statistic over its completed requests (a repeat group's runs pooled; ITL token-weighted) or, for a "
        "rate (output tokens/s, requests/min, goodput, inputs/s, documents/s, prompt tokens/s, images/s, "
        "audio seconds/s, the run's RTFx mean), the mean over its runs; error_rate's change is candidate - baseline in percentage points. Its "
        "95% interval: the percentile interval of the change over --resamples (2,000) seeded bootstrap "
        "resamples of each side, blocked by run (runs drawn with replacement, then requests within them; ITL: "
        "requests resampled whole, their tokens read from 1,024 quantile bins); for a rate, Welch's interval "
        "of the difference of the means / the baseline's mean."),
    "compare_verdict": (
        "loadtest compare: the p50 of a per-request metric is tested with Mann-Whitney U (normal approximation "
        "with tie and continuity corrections; rough below 20 requests a side), p90/p99 and ITL with the "
        "bootstrap's two-sided p-value (only with 20 requests and 5 values beyond the percentile a side), a "
        "rate with Welch's t over the runs (not tested without repeats on both sides), error_rate with "
        "Fisher's exact test. The p-values are adjusted by Benjamini-Hochberg over the metrics tested. Better "
        "or worse (by the metric's direction: lower latency, higher throughput, rates and RTFx) when the adjusted p < --alpha "
        "(0.05) and the 95% interval excludes 0; else no significant difference; not tested when no test "
        "applies. --fail-if RULE exits 3 when a better or worse change is beyond the rule's threshold."),
    "time_slices": (
        "loadtest report --slice W: each run from its first measured start to its last end in windows of W "
        "seconds: requests started in the window, TTFT p50 of the requests whose first token came in it, "
        "output tokens/s (each request's completion tokens spread evenly from its first token to its end), "
        "failed requests that ended in it. Trend: a Mann-Kendall test of each series over the full windows "
        "(the last, shorter one left out), Sen's slope per minute as its size, p-values adjusted by "
        "Benjamini-Hochberg over the series tested; rising or falling when below 0.05."),
    "client_cpu_s": (
        "CPU seconds the client process used during the measured phase (user + system), and per 1,000 "
        "completion tokens: the client's own overhead, to compare with what it measures. "
        "client_cpu_user_s and client_cpu_system_s split it (system: mostly the kernel's socket reads). With "
        "--warmup 5s / --cooldown it covers those phases too. client_cpu_span_s: the wall-clock seconds it "
        "was counted over (the verdict's CPU share divides by it)."),
    "client_startup_cpu_s": (
        "CPU seconds the client process had used when the measured phase began: interpreter start, imports, "
        "prompt loading, connection set-up and warm-up (in a sweep, capacity search, tokens sweep or matrix, "
        "the earlier runs of the same process too). Reported apart from client_cpu_s so that a run's fixed "
        "cost is never read as a per-token one. Scaled out: the workers' own plus the coordinator's."),
    "attempts": (
        "Per request: HTTP requests sent for it: 1, plus one per retry after a rate-limited answer, plus "
        "one per compatibility retry (stream_options or max_tokens rejected once). Latency fields are those "
        "of the last attempt, the one recorded."),
    "rate_limited": (
        "Per request: answers of 429 (or Anthropic's 529 overloaded, or 503 with Retry-After) it met, retried "
        "or, past --max-retries, "
        "recorded as a rate_limited failure. counts.rate_limited sums them over measured requests: "
        "rate-limited attempts, counted apart from failed requests."),
    "retry_wait_s": (
        "Per request: seconds slept before retries after rate-limited answers (the provider's "
        "retry-after-ms, else Retry-After, else x-ratelimit-reset-requests/tokens, else capped exponential "
        "backoff with seeded jitter). Never inside e2e_s, ttft_s or any latency; retry_wait_s_total sums it."),
    "limit_wait_s": (
        "Per request: seconds waited for the client-side --rpm-limit/--tpm-limit budget before its attempts "
        "(null when no limit is set); a request's tokens are estimated as prompt tokens (tiktoken) + max "
        "tokens, as providers count them. Outside every latency; limit_wait_s_total sums it."),
    "wait_share": (
        "(retry_wait_s_total + limit_wait_s_total) / (that + the sum of e2e_s of measured requests): the "
        "share of request time spent waiting. Above 0.5, limited_by says what set the pace: 'provider' "
        "(its rate limit was measured, not its speed) or 'client_limit' (the --rpm-limit/--tpm-limit set)."),
    "reasoning_tokens": (
        "Per request: of completion_tokens, those spent reasoning: usage.completion_tokens_details."
        "reasoning_tokens (Responses API: output_tokens_details); without it, the --tokenizer's count of the "
        "streamed reasoning_content/reasoning (Messages API: thinking), else completion_tokens x reasoning "
        "chunks / content chunks (a reply in one piece, as non-streamed: x its reasoning's share of the text's "
        "characters). null when the server reports none and streams no reasoning."),
    "visible_tokens_per_s": (
        "visible_tokens_total / window_s, with visible = completion_tokens - reasoning_tokens over completed "
        "requests that report reasoning tokens; reasoning_tokens_per_s likewise. Time to the first visible "
        "token is ttft_content_s."),
    "image_fields": (
        "Per request with images (--images N, a dataset's image / image_url / images): images (how many it carried, "
        "as image_url content parts after its text), image_bytes (the image files' bytes; base64 adds a third on "
        "the wire; null when an http(s) image's size is unknown to the client), and, where the server's usage "
        "reports usage.prompt_tokens_details.image_tokens, prompt_image_tokens and prompt_text_tokens "
        "(text_tokens when reported, else prompt_tokens - image tokens; null otherwise). Synthetic images are "
        "seeded by (--seed, prompt index, image index): the same run sends the same images."),
    "images_per_s": (
        "Images of completed measured requests / window_s; image_bytes_per_s likewise with image_bytes "
        "(images_total, image_bytes_total, prompt_image_tokens_total and prompt_text_tokens_total sum them). "
        "Present only in runs that sent images."),
    "transcription_fields": (
        "--api transcriptions (/audio/transcriptions, one multipart upload per request): audio_seconds, the "
        "uploaded audio's length (a synthetic clip's exact --audio-seconds, a WAV's frames / rate, other formats' "
        "header duration); ttft_s is the time to first text (the first streamed transcript delta, OpenAI's "
        "transcript.text.delta or vLLM's transcription.chunk; null without streaming); e2e_s the latency to the "
        "whole transcript; completion_tokens from usage (OpenAI's output_tokens, vLLM's streamed usage), else "
        "--tokenizer, else chunks, as for chat."),
    "rtfx": (
        "Inverse real-time factor per completed transcription: audio_seconds / e2e_s (as vLLM's and AIPerf's "
        "benchmarks define RTFx; above 1 the server transcribes faster than real time); statistics over "
        "completed measured requests. audio_seconds_per_s: audio seconds of completed measured requests / "
        "window_s, the audio the server got through per second of wall time (audio_seconds_total sums them)."),
    "synthetic_prompts": (
        "--dataset synthetic --prompt-tokens N: each prompt is seeded, space-led common words that are one "
        "token each, counted whole and trimmed or extended until it is N tokens (normal, seeded +- "
        "--prompt-tokens-stddev), counted by the server's own /tokenize when it has one (summary.prompts."
        "verified_by_server_tokenize), else --tokenizer, else tiktoken cl100k_base (summary.prompts.tokenizer). "
        "Any two prompts differ from their first token, or share exactly --shared-prefix-tokens K leading "
        "tokens and differ at the next (while there are no more prompts than one-token words, "
        "summary.prompts.word_pool); with --prefix-groups G only within a group (prompt i of the plan is in "
        "group i % G, the run sends them in its seeded shuffle), and groups differ from the first token. "
        "--cache-bust puts a word no other prompt starts with first (a unique first pair past word_pool "
        "prompts)."),
    "template_overhead_tokens": (
        "Tokens the server adds to every prompt (chat template, BOS): usage.prompt_tokens of one probe request "
        "(8 prompt tokens, max_tokens 1, before the run) minus the prompt's own count. When known and the "
        "request is long enough, every prompt is shortened by it so the server processes N tokens "
        "(template_compensated); prompts_too_short_to_compensate counts those that could not be. Null when "
        "the server reports no usage (template_overhead_unknown_because says why)."),
    "usage_mismatch": (
        "summary.prompts: of the completed measured requests with usage.prompt_tokens (usage_checked), how "
        "many the server counted exactly as requested (usage_exact) or not (usage_mismatched), and "
        "usage.prompt_tokens - requested over the mismatched ones (usage_mismatch_tokens_mean/min/max)."),
    "prompt_tokens_cached_mean": (
        "summary.prompts: mean prompt tokens the engine took from its prefix cache instead of processing, by "
        "its own timings.cache_n (llama.cpp); null when the engine does not say. 0 with unique prefixes on "
        "/completions; with a chat template, its fixed leading tokens are shared by every prompt."),
    "completions_short": (
        "summary.prompts (synthetic prompts, or --ignore-eos): completed measured requests whose "
        "completion_tokens came back below max_tokens, of completions_checked, and the shortest."),
    "prompt_processing_tokens_per_s": (
        "loadtest tokens, scenario ppN: per request, the server's usage.prompt_tokens (else N) / ttft_s of a "
        "1-token generation (e2e_s when no content chunk came); mean and sample sd over --repeat requests. "
        "engine_tokens_per_s: the engine's own timings.prompt_per_second (llama.cpp) of the same requests."),
    "text_generation_tokens_per_s": (
        "loadtest tokens, scenario tgN: per request, decode_tokens_per_s of N forced tokens (ignore_eos) after "
        "a 16-token prompt; mean and sample sd over --repeat requests. engine_tokens_per_s: the engine's own "
        "timings.predicted_per_second (llama.cpp)."),
    "scenario_timeout_s": (
        "loadtest tokens: per request of a scenario, size / the expected minimum speed of the largest table "
        "size <= it (pp 16:2 128:10 512:25 1024:50 4096:250 16384:1000; tg 16:1 128:5 512:25 1024:50 "
        "4096:250 tokens/s) x --timeout-scale, plus model file size / 250 MB/s when the command launched the "
        "server. A scenario fails at its first failed request. A failed smallest size stops the sweep; a "
        "failed larger size, or a mean speed at which the next size would exceed its timeout, skips the "
        "larger sizes of that kind; prompt + generated tokens beyond the server's context (llama.cpp /props "
        "n_ctx, vLLM max_model_len) are skipped. Each skip carries its reason."),
    "queueing": (
        "None on the client in a closed loop: the scheduler never has more requests in flight than the "
        "connection pool has connections, so no request waits for one. Under --request-rate with "
        "--max-concurrency a request may wait for a slot: that wait is queue_s, outside ttft_s and e2e_s."),
    "scheduled_s": (
        "Open loop (--request-rate): when the load shape wanted the request sent, seconds since the run "
        "started. The schedule is fixed before the run from the seed (Poisson: exponential gaps; gamma: "
        "shape --burstiness, mean gap 1/rate; constant: equal gaps; --ramp-up: the rate rises linearly)."),
    "trace_replay": (
        "--trace FILE: each row starts at its recorded offset (after --trace-window, --replay-speed and "
        "--max-idle) through the open loop, so scheduled_s is the replayed offset plus the measured phase's "
        "start, on start_s's clock; send_lag_s is measured as for --request-rate. Per request, max_tokens is "
        "the row's output length (sent with ignore_eos unless the server rejects it) and stopped_early is "
        "completion_tokens < max_tokens (None when the request failed or no count came back)."),
    "trace_sessions": (
        "--trace rows sharing a session_id replay as one multi-turn session: it starts at its first row's "
        "replayed offset (a job of the open loop, with scheduled_s and send_lag_s as any row), and each later "
        "row is its next turn, sent only after the previous reply, carrying the whole history (the earlier "
        "user turns and the server's actual replies). Per later turn, held_s: the wait after the previous "
        "reply until the turn's own replayed offset (0 when the reply came after it); late_s: how long after "
        "that offset the turn was ready because the reply came later (0 when held). Neither is inside any "
        "latency; both are inside the session's duration. Later turns have no scheduled_s, so send_lag_s "
        "stays the client's own lateness. Records carry session_id (s<job index>) and turn as other sessions."),
    "trace_block_sessions": (
        "summary.trace, for traces with session_id: sessions (distinct ids in the whole trace), "
        "session_starts (sessions replayed: their first row in --trace-window), rows_chained (rows replayed as "
        "a later turn of a session), jobs (loose rows + sessions, what the open loop started); over measured "
        "later turns that were sent: turns_held (held_s > 0), turns_late (late_s > 0), late_s_max and "
        "late_s_mean (over the late ones; null when none)."),
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
        "(goodput_requests_per_s per second); good_fraction is their share of the measured requests "
        "(abandoned and cancelled ones left out)."),
    "event_loop_delay": (
        "run.monitors.event_loop_delay: how late a 20 ms ticker on the client's event loop woke during the "
        "measured phase (p50/p99/max): a delay any arrival stamp taken then could have suffered."),
    "host_cpu": (
        "run.monitors.host_cpu: the host's CPU in cores (1.0 = one core busy) over the measured phase, "
        "sampled every 0.25 s: host_busy (all non-idle time), client (this process), server (the process "
        "listening on the endpoint's port when it is on this host, and its tree as found before the run), "
        "others = host_busy - client - server, never below 0."),
    "verdict": (
        "Whether the measurement is valid. client_bound: open-loop send_lag_s p99 > 10 ms, event_loop_delay "
        "p99 > 10 ms, or client CPU (client_cpu_s / client_cpu_span_s; scaled out: each worker's) > 0.9 cores. disturbed: host_cpu others mean "
        "> 0.5 cores (null when the host was not sampled). server_saturated: open loop, requests_per_s < 0.9 "
        "x the lower of the target rate and achieved_rate_per_s x the share of requests not abandoned. "
        "schedule_missed: the client could not issue the open loop's schedule: starts were dropped "
        "(schedule.dropped > 0) or send_lag_s max > 1 s. worker_lost: scaled out, a worker died and the run "
        "went on (--on-worker-failure continue): less load than asked from then on. A part divided by time needs 1 s to judge (client CPU: "
        "client_cpu_span_s; saturation: window_s) and disturbed 4 host samples; a shorter run says \"cannot judge "
        "...\" for that part in notes (disturbed then null). valid: false when client_bound, disturbed, "
        "schedule_missed or worker_lost; null when nothing was flagged but a part could not be judged; else true."),
    "schedule": (
        "Open loop: what became of its starts. due: starts whose time came (taken from the schedule); sent; "
        "waited: starts that found every --max-concurrency slot busy and waited (queue_s); waiting_max: the "
        "most waiting at once; dropped: starts due while backlog_bound starts already waited, never sent "
        "(backlog_bound = max(C, min(rate x 1 s, 10,000)); scaled out, each worker's own bound from its share of C and "
        "of the rate, summed, and waiting_max the most one worker held); unsent_at_end: still "
        "waiting when the deadline or a stop ended the run, or started at that instant and cancelled before it "
        "was sent (no record); sent = due - dropped - unsent_at_end, one record each. overflow: drop, or wait (--request-rate inf: the "
        "schedule is read only as slots free, all at once up to the cap; nothing is dropped). Counts cover "
        "the whole schedule, warm-up and cooldown included."),
    "scale_out": (
        "run.scale_out (--workers N, --ray-address): the worker count, backend (processes or ray), "
        "--on-worker-failure, worker_failures (each dead worker by name, pid, exit code, last error, seconds "
        "into the run, its requests recorded and lost in flight: one line each), failed (the same as objects: "
        "name, pid, died_at_s, exit_code, signal, reason, started, recorded, lost_in_flight: started and never "
        "recorded, in flight or finished with its record not yet written) "
        "and the clocks: every per-request duration is measured inside one worker (monotonic); run-level "
        "windows are the coordinator's (--duration, else the merged records' first measured start to last "
        "end); workers start together at a wall-clock instant the coordinator names (start barrier). All "
        "statistics come from the merged raw records (exact percentiles). client_cpu_s is the workers' sum."),
    "workers": (
        "run.workers: per worker, its share (closed-loop concurrency, or the open-loop starts dealt to it "
        "and its max_concurrency), the requests it sent and completed (warm-up included), how it ended "
        "('died' when it exited without reporting), its client_cpu_s, send lag p99 and event-loop delay "
        "p99, its pid and host, and clock_origin_ns (its records' start_s/end_s count from there; worker "
        "k's records are those with id % N == k). The verdict's CPU test applies to each worker (one "
        "Python thread each)."),
    "server_metrics": (
        "The server's own /metrics (and NVML) sampled by a child process every server_metrics.interval_s "
        "through the run (server_metrics.jsonl, on the run's clock). Counters and histograms: change from "
        "each source's last sample at or before the measured window to its first at or after it; gauges: "
        "mean and max over the samples inside the window; histogram percentiles interpolated within "
        "buckets, with the bucket edges that bound them. known: the engine-independent names "
        "(docs/server-metrics.md); absent when the engine does not expose them."),
    "ttft_split": (
        "server_metrics.ttft_split: the client's mean TTFT over measured successes split into means "
        "(which add up): from the server's histograms, queue + prefill + the rest of the server's TTFT, "
        "and client TTFT - server TTFT (network, HTTP, client); from engine timings per request "
        "(llama.cpp prompt_ms), prefill and everything else."),
    "cached_tokens": (
        "Per request: prompt tokens served from the server's prefix cache, from "
        "usage.prompt_tokens_details.cached_tokens, else llama.cpp's timings.cache_n (null: not reported); "
        "Messages API: usage.cache_read_input_tokens. cached_tokens_source says which ('usage', 'timings' or "
        "'anthropic')."),
    "cache_creation_tokens": (
        "Per request, Messages API: prompt tokens written to the prompt cache "
        "(usage.cache_creation_input_tokens; null: not reported). Part of prompt_tokens, not of cached_tokens: "
        "they were computed, and a later request can read them."),
    "messages_api": (
        "--api messages (Anthropic's Messages API, POST /messages with x-api-key and anthropic-version): "
        "completion_tokens = usage.output_tokens (thinking included); prompt_tokens = input_tokens + "
        "cache_read_input_tokens + cache_creation_input_tokens (Anthropic's input_tokens counts only what "
        "follows the last cache breakpoint); cached_tokens = cache_read_input_tokens; reasoning_tokens from "
        "the thinking text; finish_reason in chat's names (end_turn and stop_sequence: stop, max_tokens: "
        "length, tool_use: tool_calls, refusal: content_filter). message_start's output_tokens is not a "
        "count: a stream cut short before message_delta counts its partial tokens from what arrived. "
        "Usage arrives once, at the end: chunk_tokens as for chat streams without per-chunk usage."),
    "prefix_cache": (
        "summary.prefix_cache, over the completed measured requests that report cached_tokens "
        "(requests_reporting): hit_rate = sum(cached_tokens) / sum(prompt_tokens); source: 'usage', "
        "'llama.cpp timings', 'anthropic usage' (joined by ' + ' when requests differ), or 'none' when no "
        "request reports "
        "cached tokens (then every figure is null, not 0); hits: requests with cached_tokens > 0, misses: "
        "with 0; ttft_hit_s and ttft_miss_s: count, p50 and mean of ttft_s of each; cache_creation_tokens_total: "
        "sum(cache_creation_tokens) of those that report it (Messages API; else null). A hit's TTFT saving is "
        "about the cached tokens' prefill time. --prefix-groups G --shared-prefix-tokens K makes G groups of "
        "prompts sharing K leading tokens; --cache-bust gives every prompt a unique first token (the baseline "
        "where nothing can hit)."),
    **WORKLOAD_DEFINITIONS,  # sessions, tool loops, embeddings and rerank, repeats (measure/workload_definitions.py)
}


def markdown() -> str:
    """The definitions block of docs/metrics.md (a test checks the doc matches)."""
    return "\n".join(f"- **`{name}`**: {text}" for name, text in DEFINITIONS.items()) + "\n"
