"""The live view with and without the server's /metrics values (LiveStats.server)."""

from __future__ import annotations

from types import SimpleNamespace

from rich.console import Console

from loadtest.run.live import panel, plain_line, server_text
from loadtest.run.livestats import LiveStats


def _stats(server: dict[str, float] | None = None) -> LiveStats:
    stats = LiveStats(sent=5)
    for ttft in (0.1, 0.3):
        stats.add(SimpleNamespace(ok=True, ttft_s=ttft, tpot_s=0.01, completion_tokens=8))
    stats.server = server
    return stats


def _panel_text(snapshot: dict) -> str:  # type: ignore[type-arg]
    console = Console(record=True, width=120)
    console.print(panel("throughput", snapshot, 10, None))
    return console.export_text()


def test_line_without_server_is_unchanged() -> None:
    s = _stats().snapshot()
    assert s["server"] is None
    line = plain_line("throughput", s, 10)
    assert line.startswith("throughput: 2/10 requests, 0 failed, 3 in flight, ")
    assert ", TTFT p50 200.0 ms, 0 s" in line and line.endswith(" s") and "server" not in line
    assert "server" not in _panel_text(s)


def test_line_with_server() -> None:
    s = _stats({"running": 3.0, "waiting": 1.0, "kv_cache_usage": 0.42}).snapshot()
    line = plain_line("throughput", s, 10)
    assert line.endswith(", 0 s, server: 3 running, 1 waiting, KV 42%")
    text = _panel_text(s)
    assert "server" in text and "3 running, 1 waiting, KV 42%" in text


def test_server_text_parts() -> None:
    assert server_text({"kv_cache_usage": 0.5}) == "KV 50%"
    assert server_text({"running": 2.0}) == "2 running"
    assert server_text({"waiting": float("nan")}) is None and server_text({}) is None and server_text(None) is None


def test_merge_keeps_the_server_snapshot() -> None:
    server = {"running": 1.0}
    assert _stats().merge(_stats(server)).server is server
    assert _stats(server).merge(_stats()).server is server
