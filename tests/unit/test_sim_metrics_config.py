"""The sim's /metrics options (split from tests/integration/test_sim_metrics.py, which runs the
server): they round-trip through the CLI flags, unusable ones are refused with one clear line, and
the engine model's arithmetic (power integral, KV ratio, histogram buckets) holds without a server."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from loadtest.cli.serve import sim_config, sim_options
from loadtest.errors import ConfigError
from loadtest.sim import SimConfig
from loadtest.sim.engine import REQUEST_BUCKETS_S, Engine, Histogram
from loadtest.sim.state import Stats


def _parse(args: list[str]) -> SimConfig:
    parser = argparse.ArgumentParser()
    sim_options(parser)
    return sim_config(parser.parse_args(args))


def test_metrics_options_round_trip_through_cli_flags() -> None:
    cfg = SimConfig(metrics=("dcgm", "vllm"), kv_cache_tokens=4096, keep_generating_on_disconnect=True,
                    metrics_delay_ms=250.0, metrics_malformed=True, metrics_extra_series=7)
    assert _parse(cfg.to_args()) == cfg
    assert "--metrics" in cfg.to_args() and "dcgm,vllm" in cfg.to_args()
    assert _parse(["--metrics", " llamacpp , vllm"]).metrics == ("llamacpp", "vllm")
    default = _parse([])
    assert default.metrics == () and "--metrics" not in default.to_args() and default.kv_cache_tokens == 65536
    assert SimConfig(metrics=["vllm"]).metrics == ("vllm",)  # type: ignore[arg-type]  # a list is kept as a tuple


@pytest.mark.parametrize("bad", [{"metrics": ("vllm", "sglang")}, {"metrics": ("vllm", "vllm")},
                                 {"kv_cache_tokens": 0}, {"metrics": ("vllm",), "metrics_delay_ms": -1},
                                 {"metrics": ("vllm",), "metrics_delay_ms": float("nan")},
                                 {"metrics": ("vllm",), "metrics_extra_series": -1},
                                 {"metrics_malformed": True}, {"metrics_delay_ms": 5.0},
                                 {"metrics_extra_series": 3}])
def test_unusable_metrics_options_are_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        SimConfig(**bad)


def test_an_unknown_family_on_the_command_line_is_one_clear_line() -> None:
    proc = subprocess.run([sys.executable, "-m", "loadtest.sim", "--port", "0", "--metrics", "vllm,tgi"],
                          capture_output=True, text=True, timeout=60, cwd=Path(__file__).parents[2], check=False)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert lines == ["loadtest: error: sim: metrics must be distinct names from vllm, llamacpp, dcgm, got vllm,tgi"]


class _Req:
    """A reply as the engine sees it."""

    def __init__(self, arrival_ns: int, slot_ns: int, prompt: int) -> None:
        self.arrival_ns, self.slot_ns, self.recv_ns, self.sent, self.prompt_tokens = arrival_ns, slot_ns, slot_ns, 0, prompt
        self.cached_tokens = 0  # no prefix cache


def test_engine_power_integral_kv_and_histograms_are_exact() -> None:
    stats = Stats()
    engine = Engine(SimConfig(kv_cache_tokens=100), stats, ttft_ns=10_000_000, tpot_ns=2_000_000)
    t0 = engine.power_since_ns
    assert engine.energy_mj(t0 + 1_000_000_000) == 60_000  # idle: 60 W for 1 s
    a = _Req(t0 + 1_000_000_000, t0 + 1_000_000_000, 30)
    engine.take_slot(a)
    assert (stats.active, engine.kv_usage(), engine.power_w()) == (1, 0.3, 110)
    a.sent = 3
    engine.generated(a, 0, 3)
    assert engine.kv_tokens == 33 and engine.itl_tokens == 2 and engine.prompt_tokens == 30
    assert engine.prefill.sum_ns == 10_000_000 == engine.ttft.sum_ns  # no queue: TTFT = prefill
    engine.free_slot(a, t0 + 1_500_000_000, "length")
    assert (stats.active, engine.kv_tokens, engine.finished["length"]) == (0, 0, 1)
    assert engine.decode.sum_ns == 4_000_000 and engine.e2e.sum_ns == 14_000_000
    # 60 W for 2 s, plus 50 W for the 0.5 s the request held its slot.
    assert engine.energy_mj(t0 + 2_000_000_000) == 60 * 2000 + 50 * 500
    b = _Req(t0, t0, 500)
    engine.take_slot(b)
    assert engine.kv_usage() == 1.0  # capped: the cache holds no more than it has
    engine.free_slot(b, t0 + 2_000_000_000, "abort")
    assert engine.finished["abort"] == 1 and engine.decode.count == 1 and engine.lc_predicted_tokens == 3


def test_histogram_buckets_are_le_and_cumulative() -> None:
    h = Histogram(REQUEST_BUCKETS_S)
    h.observe(300_000_000)  # exactly 0.3 s: in the le="0.3" bucket
    h.observe(300_000_001, times=2)
    h.observe(10_000 * 1_000_000_000)  # beyond every edge: +Inf only
    buckets = dict(h.cumulative())
    assert (buckets["0.3"], buckets["0.5"], buckets["7680.0"], buckets["+Inf"]) == (1, 3, 3, 4)
    assert h.count == 4 and h.sum_ns == 300_000_000 + 600_000_002 + 10_000_000_000_000
