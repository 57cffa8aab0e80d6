import numpy as np
import pytest

from loadtest.measure.metrics import compute_metrics, summarize
from loadtest.measure.record import build_record, cancelled_record
from loadtest.transport import Exchange


def test_summarize_empty_is_not_measured_not_zero():
    s = summarize([])
    assert s["count"] == 0 and all(s[k] is None for k in ("mean", "p50", "p99", "min", "max", "std"))


def test_summarize_values():
    s = summarize([1.0, 2.0, 3.0, 4.0])
    assert s["mean"] == 2.5 and s["p50"] == 2.5 and s["min"] == 1 and s["max"] == 4
    assert s["p90"] == pytest.approx(3.7) and s["std"] == pytest.approx(np.std([1, 2, 3, 4]))


def test_weighted_summary_equals_repeated_samples():
    w = summarize(np.array([1.0, 5.0]), np.array([3.0, 1.0]))
    assert w["mean"] == pytest.approx(2.0) and w["p50"] == 1.0 and w["p90"] == 5.0 and w["weight"] == 4


def _ok(i: int, start_ms: int, ttft_ms: int, gaps_ms: list[int]) -> object:
    t = start_ms * 1_000_000
    pieces, at = [], t + ttft_ms * 1_000_000
    for g in [0, *gaps_ms]:
        at += g * 1_000_000
        pieces.append((at, b'data: {"choices":[{"delta":{"content":"x"}}]}\n\n'))
    ex = Exchange(t_start_ns=t, status=200, content_type="text/event-stream", pieces=pieces, t_end_ns=at)
    return build_record(ex, request_id=i, prompt_id=str(i), run_t0_ns=0, stream=True, tokenizer=None)


def test_run_metrics_rates_and_itl_pooling():
    recs = [_ok(0, 0, 100, [10, 10, 10]), _ok(1, 0, 200, [20]), _ok(2, 50, 100, [])]
    failed = build_record(Exchange(t_start_ns=0, error_kind="timeout", error="t"), request_id=3, prompt_id="3",
                          run_t0_ns=0, stream=True, tokenizer=None)
    cancelled = cancelled_record(request_id=4, prompt_id="4", t_start_ns=0, run_t0_ns=0, warmup=False, reason="x")
    out = compute_metrics([*recs, failed, cancelled], window_s=2.0)
    assert out["counts"] == {"requests": 5, "completed": 3, "failed": 1, "cancelled": 1, "abandoned": 0,
                             "rate_limited": 0}
    m = out["metrics"]
    assert m["requests_per_s"] == 1.5 and m["requests_per_min"] == 90
    assert m["completion_tokens_total"] == 7 and m["output_tokens_per_s"] == 3.5
    assert m["ttft_s"]["mean"] == pytest.approx(0.4 / 3)
    # ITL: 3 samples of 10 ms and 1 of 20 ms, pooled per token.
    assert m["itl_s"]["count"] == 4 and m["itl_s"]["mean"] == pytest.approx(0.0125)
    assert m["itl_s"]["p50"] == pytest.approx(0.010) and m["itl_s"]["max"] == pytest.approx(0.020)
    assert out["errors"] == {"timeout": {"count": 1, "example": "t"}}
    assert out["token_source"] == {"chunks": 3}
