"""What a run shows while it runs: a rich panel on a terminal (in flight, sent/done/failed, rate,
rolling TTFT/TPOT medians, tokens/s, elapsed and ETA; the server's running/waiting/KV usage when a
/metrics scraper feeds LiveStats.server), a plain line every 5 s otherwise, nothing
with --quiet. Rendered from the event loop once a second (rich's refresh thread would take the
GIL at moments the loop cannot choose), so it costs the arrival stamps ~1 ms a second at most."""

from __future__ import annotations

import asyncio
import math
import sys
from typing import Any

from loadtest.run.livestats import LiveStats


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v * 1e3:,.1f} ms"


def _num(v: float | None, unit: str = "") -> str:
    return "-" if v is None else f"{v:,.1f}{unit}"


def eta_s(s: dict[str, Any], total: int | None, duration_s: float | None) -> float | None:
    if duration_s:
        return max(0.0, duration_s - s["elapsed_s"])
    if total and s["rate_per_s"]:
        return max(0.0, (total - s["done"]) / s["rate_per_s"])
    return None


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def server_text(server: dict[str, float] | None) -> str | None:
    """The scraper's latest sample as "3 running, 1 waiting, KV 42%" (the parts it had), or None."""
    if not server:
        return None
    parts = [f"{server[k]:.0f} {k}" for k in ("running", "waiting") if _finite(server.get(k))]
    if _finite(kv := server.get("kv_cache_usage")):
        parts.append(f"KV {kv * 100:.0f}%")
    return ", ".join(parts) or None


def plain_line(command: str, s: dict[str, Any], total: int | None) -> str:
    of = f"/{total}" if total else ""
    server = server_text(s.get("server"))
    return (f"{command}: {s['done']}{of} requests, {s['failed']} failed, {s['in_flight']} in flight, "
            f"{_num(s['rate_per_s'], ' req/s')}, TTFT p50 {_ms(s['ttft_p50_s'])}, {s['elapsed_s']:.0f} s"
            + (f", server: {server}" if server else ""))


def panel(command: str, s: dict[str, Any], total: int | None, duration_s: float | None) -> Any:
    from rich.panel import Panel
    from rich.table import Table

    t = Table.grid(padding=(0, 2))
    t.add_column(style="bold")
    t.add_column(justify="right")
    t.add_column(style="bold")
    t.add_column(justify="right")
    eta = eta_s(s, total, duration_s)
    t.add_row("in flight", str(s["in_flight"]), "rate", _num(s["rate_per_s"], " req/s"))
    t.add_row("sent / done", f"{s['sent']} / {s['done']}{'/' + str(total) if total else ''}",
              "output", _num(s["tokens_per_s"], " tok/s"))
    t.add_row("failed", str(s["failed"]), "TTFT p50", _ms(s["ttft_p50_s"]))
    t.add_row("elapsed", f"{s['elapsed_s']:.0f} s", "TPOT p50", _ms(s["tpot_p50_s"]))
    server = server_text(s.get("server"))
    t.add_row("ETA", "-" if eta is None else f"{eta:.0f} s", "server" if server else "", server or "")
    return Panel(t, title=f"loadtest {command}", subtitle="rolling over the last 256 requests", expand=False)


async def show(stats: LiveStats, command: str, *, total: int | None, duration_s: float | None) -> None:
    """Until cancelled. The caller prints nothing else to stderr meanwhile."""
    if not sys.stderr.isatty():
        while True:
            await asyncio.sleep(5.0)
            print(plain_line(command, stats.snapshot(), total), file=sys.stderr, flush=True)
    from rich.console import Console
    from rich.live import Live

    with Live(panel(command, stats.snapshot(), total, duration_s), console=Console(stderr=True),
              auto_refresh=False, transient=False) as live:
        while True:
            await asyncio.sleep(1.0)
            live.update(panel(command, stats.snapshot(), total, duration_s), refresh=True)
