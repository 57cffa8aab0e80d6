"""The client's side of the scraper process (scrape.py): start it with the run, hand it the run's
clock, stop it after the measured window, and read its live lines on a thread so the live view can
show the server's queue and KV cache. Nothing here runs on the event loop except three pipe writes."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import orjson

from loadtest.redact import redact
from loadtest.servermetrics.scrape import FINAL_TIMEOUT_S, NVML_SOURCE

FILE = "server_metrics.jsonl"
AUTO = "auto"
READY_WAIT_S = 0.5
"""How long the measured window may wait for the first sample of every source (the baseline its
counters are measured from); a slower source just has its baseline later, and the summary says so."""


def metrics_url(base_url: str) -> str:
    """The endpoint's host's /metrics: http://h:p/v1 -> http://h:p/metrics (engines serve it at the root)."""
    p = urlsplit(base_url)
    host = p.hostname or ""
    netloc = (f"[{host}]" if ":" in host else host) + (f":{p.port}" if p.port else "")
    return urlunsplit((p.scheme, netloc, "/metrics", "", ""))  # no user:password@ (a key may be there)


def resolve_sources(base_url: str, given: tuple[str, ...]) -> list[str]:
    """--server-metrics values: 'auto' is the endpoint's own /metrics; URLs are taken as given."""
    out: list[str] = []
    for s in given:
        url = metrics_url(base_url) if s == AUTO else s
        if url not in out:
            out.append(url)
    return out


class ServerMetrics:
    """One scraper process for one run. ``on_live`` gets each new snapshot of the known gauges
    (running, waiting, kv_cache_usage, gpu_power_w), from the reader thread."""

    def __init__(self, sources: list[str], *, interval_s: float, directory: Path, gpu: bool = True,
                 on_live: Callable[[dict[str, float]], None] | None = None) -> None:
        self.sources = sources + ([NVML_SOURCE] if gpu else [])
        self.labels = [redact(u) for u in self.sources]  # as the sample lines name them
        self.interval_s = interval_s
        self.path = directory / FILE
        self.on_live = on_live
        self.cpu_s: float | None = None
        self._ready = threading.Event()
        self._proc: subprocess.Popen[bytes] | None = None
        self._reader: threading.Thread | None = None
        self.started_ns: int | None = None

    def start(self) -> ServerMetrics:
        self.path.unlink(missing_ok=True)  # a resumed or repeated run starts its own file
        spec = {"sources": self.sources, "labels": dict(zip(self.sources, self.labels)),
                "interval_s": self.interval_s, "out": str(self.path),
                "timeout_s": max(2.0, min(5.0, 2 * self.interval_s))}
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [_package_root(),
                                                                        os.environ.get("PYTHONPATH")])))
        self.started_ns = time.perf_counter_ns()
        self._proc = subprocess.Popen([sys.executable, "-m", "loadtest.servermetrics.scrape",
                                       orjson.dumps(spec).decode()], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env,
                                      start_new_session=True)  # a Ctrl-C is the client's to handle
        self._reader = threading.Thread(target=self._read, name="loadtest-server-metrics", daemon=True)
        self._reader.start()
        return self

    def _read(self) -> None:
        proc = self._proc
        assert proc is not None and proc.stdout is not None
        for raw in proc.stdout:
            try:
                msg = orjson.loads(raw)
            except orjson.JSONDecodeError:
                continue
            if "known" in msg and self.on_live is not None:
                self.on_live(msg["known"])
            elif msg.get("ready"):
                self._ready.set()
            elif "cpu_s" in msg:
                self.cpu_s = msg["cpu_s"]
        self._ready.set()
        # Its output ended: it exited (every source given up, or stopped). Reap it now, so no zombie
        # lingers beside the run (the server's /metrics is often simply absent).
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=FINAL_TIMEOUT_S + 1.0)

    def _send(self, text: str) -> None:
        if self._proc is None or self._proc.stdin is None:
            return
        try:
            self._proc.stdin.write(text.encode())
            self._proc.stdin.flush()
        except (BrokenPipeError, OSError):
            pass  # the scraper ended; what it wrote stands

    def wait_ready(self, timeout_s: float = READY_WAIT_S) -> bool:
        """Blocks a worker thread (never the loop) until every source had its first sample."""
        return self._ready.wait(timeout_s)

    def set_origin(self, origin_ns: int) -> None:
        self._send(f"origin {origin_ns}\n")

    def stop(self, *, final: bool) -> None:
        """``final``: one last sample of each source after the window (bounded by FINAL_TIMEOUT_S);
        otherwise (a signal, a failure) quit at once and keep what was written."""
        if self._proc is None:
            return
        if final:
            self._send("stop\n")
        else:
            self._proc.terminate()
        try:
            self._proc.wait(timeout=FINAL_TIMEOUT_S + 0.5 if final else 1.0)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        try:
            assert self._proc.stdin is not None
            self._proc.stdin.close()
        except OSError:
            pass
        if self._reader is not None:
            self._reader.join(timeout=1.0)
        self._proc = None


def _package_root() -> str:
    """The directory holding the loadtest package, so the child imports the same code (a source
    checkout run from elsewhere, a test worktree)."""
    import loadtest

    return str(Path(loadtest.__file__).resolve().parent.parent)


def read_lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    out = []
    with path.open("rb") as f:
        for raw in f:
            try:
                out.append(orjson.loads(raw))
            except orjson.JSONDecodeError:
                continue  # a line cut by a kill: the ones before it stand
    return out
