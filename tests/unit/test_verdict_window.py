"""The verdict's honest parts (judge/verdict.py): a share divided by time needs enough time to
judge, and an open loop that dropped starts says the client could not issue its schedule. The
summaries are the shape summary.json has; runs that produce them are in
tests/integration/test_faults_overload.py."""

from __future__ import annotations

from typing import Any

from loadtest.judge.verdict import MIN_JUDGE_S, judge, line


def summary(*, cpu_s=0.5, cpu_span_s=10.0, window_s=10.0, samples=40, rate=None, schedule=None,
            lag_max=None, e2e_mean=0.1, **metrics: Any) -> dict[str, Any]:
    host = {"span_s": samples * 0.25, "samples": samples, "others_cores_mean": 0.1, "cpu_count": 2} if samples else \
        {"span_s": 0.0}
    return {
        "metrics": {"window_s": window_s, "send_lag_s": {"p99": 0.001, "max": lag_max}, "e2e_s": {"mean": e2e_mean},
                    "requests_per_s": metrics.get("requests_per_s"), "achieved_rate_per_s": rate},
        "run": {"client_cpu_s": cpu_s, "client_cpu_span_s": cpu_span_s,
                "monitors": {"host_cpu": host, "event_loop_delay": {"p99_s": 0.001}}},
        "config": {"request_rate": rate}, "counts": {"requests": 10}, "schedule": schedule,
    }


def test_a_long_quiet_run_is_valid():
    v = judge(summary())
    assert v["valid"] is True and v["labels"] == [] and line(v).startswith("verdict: valid")


def test_cpu_over_a_window_too_short_cannot_be_judged_never_client_bound():
    # what an aborted run read: 9 s of CPU over a 1 ms window was "9,269,671 cores"
    v = judge(summary(cpu_s=9.0, cpu_span_s=0.3, window_s=0.000001, samples=1))
    assert not v["client_bound"] and v["client_cores"] is None and v["valid"] is None
    text = line(v)
    assert "CLIENT-BOUND" not in text
    assert f"cannot judge client CPU: window 0.30 s shorter than {MIN_JUDGE_S:g} s" in text
    assert "cannot judge other processes' load: 1 host samples" in text and v["disturbed"] is None


def test_cpu_is_divided_by_the_span_it_was_counted_over_not_the_window():
    # an interrupted run: records span 0.5 s, the CPU clock ran 10 s
    v = judge(summary(cpu_s=2.0, cpu_span_s=10.0, window_s=0.5))
    assert v["client_cores"] == 0.2 and not v["client_bound"]


def test_a_busy_client_over_a_long_span_is_still_client_bound():
    v = judge(summary(cpu_s=9.5, cpu_span_s=10.0))
    assert v["client_bound"] and v["valid"] is False and "client CPU 0.95 cores" in line(v)


def test_an_older_summary_without_the_span_uses_the_window():
    s = summary(cpu_s=9.5, window_s=10.0)
    del s["run"]["client_cpu_span_s"]
    assert judge(s)["client_cores"] == 0.95


def test_saturation_over_a_short_window_cannot_be_judged():
    v = judge(summary(rate=100.0, window_s=0.5, requests_per_s=10.0))
    assert not v["server_saturated"] and "cannot judge server saturation: window 0.50 s" in line(v)
    assert judge(summary(rate=100.0, window_s=5.0, requests_per_s=10.0))["server_saturated"]


def test_dropped_starts_say_the_client_could_not_issue_the_schedule():
    sched = {"due": 300_000, "dropped": 290_000, "max_concurrency": 8, "backlog_bound": 10_000}
    v = judge(summary(rate=100_000.0, schedule=sched, requests_per_s=80.0))
    assert v["schedule_missed"] and "schedule-missed" in v["labels"] and v["valid"] is False
    text = line(v)
    assert "SCHEDULE-MISSED" in text and "client could not issue the schedule: 290,000 of 300,000 starts dropped" in text
    assert "about 10,000 in flight would keep up" in text  # 100,000 req/s x 0.1 s


def test_a_start_more_than_a_second_late_misses_the_schedule():
    v = judge(summary(rate=10.0, lag_max=1.5, requests_per_s=10.0))
    assert v["schedule_missed"] and "a start went out 1.50 s late" in line(v)
    assert not judge(summary(rate=10.0, lag_max=0.2, requests_per_s=10.0))["schedule_missed"]
