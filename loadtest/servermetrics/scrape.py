"""The scraper: a child process that samples each source's /metrics (and NVML) on a timer and
writes server_metrics.jsonl.

Why a process of its own: parsing a vLLM page is tens of milliseconds of pure Python. In a thread
of the client it would hold the GIL the event loop needs, and arrival stamps would move by up to the
interpreter's switch interval (5 ms); in another process it costs the client nothing but one pipe
write at the start. One thread per source keeps at most one request in flight per source, on its own
connection, so a slow source delays neither the others nor the run.

Protocol (the parent is servermetrics/scraper.py): argv[1] is a JSON spec. On stdin the parent
writes ``origin NS`` (the run's clock origin, perf_counter_ns, the same monotonic clock here) and
``stop`` (take one last sample of each source, then exit); end of input means quit at once. On
stdout the child writes JSON lines: ``{"ready": true}`` once every source answered (or failed) its
first scrape, ``{"known": {...}}`` after each sample (the live view), and ``{"cpu_s": x}`` last.
Lines wait in memory until the origin is known (the run's clock starts after the scraper does)."""

from __future__ import annotations

import contextlib
import http.client
import os
import queue
import sys
import threading
import time
from typing import Any
from urllib.parse import urlsplit

import orjson

from loadtest.servermetrics import engines
from loadtest.servermetrics.exposition import ExpositionError, Scrape, difference, metric_name, parse

MAX_PAGE_BYTES = 32 * 2**20
MAX_UNKNOWN_SERIES = 5000
"""Past this many series a page keeps only the metrics the engine map knows (a page of 100k series
every second would write gigabytes)."""
FINAL_TIMEOUT_S = 2.0
"""The last sample after the run may not hold the end of the run longer than this."""
NVML_SOURCE = "nvml"


class Fetcher:
    """GET one URL over a kept-alive connection of its own."""

    def __init__(self, url: str, timeout_s: float) -> None:
        parts = urlsplit(url)
        self.https = parts.scheme == "https"
        self.host, self.port = parts.hostname or "localhost", parts.port
        self.path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.timeout_s = timeout_s
        self._conn: http.client.HTTPConnection | None = None

    def get(self, timeout_s: float) -> tuple[int, str]:
        if self._conn is None:
            cls = http.client.HTTPSConnection if self.https else http.client.HTTPConnection
            self._conn = cls(self.host, self.port, timeout=timeout_s)
        self._conn.timeout = timeout_s
        if self._conn.sock is not None:
            self._conn.sock.settimeout(timeout_s)
        try:
            self._conn.request("GET", self.path, headers={"Accept": "text/plain"})
            resp = self._conn.getresponse()
            body = resp.read(MAX_PAGE_BYTES + 1)
            if len(body) > MAX_PAGE_BYTES:
                raise ValueError(f"page over {MAX_PAGE_BYTES // 2**20} MiB: not read")
            return resp.status, body.decode("utf-8", "replace")
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _keep_known(scrape: Scrape, found: list[engines.Engine]) -> Scrape:
    """A huge page reduced to the series the engine maps name."""
    wanted: set[str] = set()
    for engine in found:
        for names in (*engine.gauges.values(), *engine.counters.values(), *engine.histograms.values(),
                      *engine.histogram_sums.values(), *engine.counter_sums.values()):
            wanted.update(names)
    keep = lambda m: {k: v for k, v in m.items() if metric_name(k) in wanted}
    return Scrape(keep(scrape.gauges), keep(scrape.counters), keep(scrape.histograms), {})


def _compact(line: dict[str, Any]) -> dict[str, Any]:
    """Counters and histograms that did not move are left out of a delta line (absent = +0)."""
    if line.get("baseline"):
        return line
    line["counters"] = {k: v for k, v in line["counters"].items() if v}
    line["histograms"] = {k: h for k, h in line["histograms"].items() if h["count"] or h["sum"]}
    return line


class Source(threading.Thread):
    """Samples one URL (or NVML) until told to stop, then once more."""

    def __init__(self, url: str, spec: dict[str, Any], out: queue.Queue[dict[str, Any]],
                 stop: threading.Event, quit_: threading.Event) -> None:
        super().__init__(name=f"scrape {url}", daemon=True)
        self.url, self.out, self.stop, self.quit = url, out, stop, quit_
        self.label = spec.get("labels", {}).get(url, url)  # what files show: credentials redacted
        self.interval_s, self.timeout_s = float(spec["interval_s"]), float(spec["timeout_s"])
        self.prev: Scrape | None = None
        self.engines: list[engines.Engine] = []
        self.reduced = False
        self.nvml: Any = None
        self.fetcher = Fetcher(url, self.timeout_s) if url != NVML_SOURCE else None

    def _read(self, timeout_s: float) -> Scrape:
        if self.fetcher is None:
            if self.nvml is None:
                from loadtest.servermetrics.gpu import NVML

                self.nvml = NVML()  # NoGPU ends this source with its reason
            return self.nvml.read()
        status, text = self.fetcher.get(timeout_s)
        if status != 200:
            raise _HTTPStatus(status)
        return parse(text)

    def sample(self, timeout_s: float) -> bool:
        """One sample; False when this source is given up (no /metrics there, not Prometheus)."""
        t0 = time.perf_counter_ns()
        line: dict[str, Any] = {"source": self.label}
        try:
            scrape = self._read(timeout_s)
        except Exception as e:  # noqa: BLE001 - any failure is one failed sample, never the scraper's end
            t1 = time.perf_counter_ns()
            first = self.prev is None
            give_up = first and (isinstance(e, (_HTTPStatus, ExpositionError)) or type(e).__name__ == "NoGPU")
            line |= {"t_ns": (t0 + t1) // 2, "ok": False, "error": _describe(e, timeout_s)}
            if give_up:
                line["gave_up"] = True
            self.out.put(line)
            return not give_up
        t1 = time.perf_counter_ns()
        if self.prev is None:
            self.engines = engines.present(engines.names_of(scrape))
            line["engine"] = self.engines[0].name if self.engines else None
            line["engines"] = [e.name for e in self.engines]
            if scrape.series_count() > MAX_UNKNOWN_SERIES:
                self.reduced = True
                line["note"] = (f"{scrape.series_count()} series on the page: only the "
                                f"{self.engines[0].name if self.engines else 'known'} metrics are kept")
        if self.reduced:
            scrape = _keep_known(scrape, self.engines)
        line |= {"t_ns": (t0 + t1) // 2, "ok": True, "scrape_s": (t1 - t0) / 1e9,
                 "known": engines.live_gauges(self.engines, scrape.gauges)}
        line |= _compact(difference(scrape, self.prev))
        self.prev = scrape
        self.out.put(line)
        return True

    def run(self) -> None:
        due = time.monotonic()
        try:
            while not self.quit.is_set():
                final = self.stop.is_set()
                if final and self.prev is None:
                    return  # it never answered: a last try would only hold up the end of the run
                if not self.sample(min(self.timeout_s, FINAL_TIMEOUT_S) if final else self.timeout_s) or final:
                    return
                due += self.interval_s
                now = time.monotonic()
                due = max(due, now)  # a slow scrape: the next starts at once, never two in flight
                self.stop.wait(due - now)  # a stop wakes it for the last sample at once
        finally:
            if self.fetcher is not None:
                self.fetcher.close()
            if self.nvml is not None:
                self.nvml.close()
            self.out.put({"source": self.label, "done": True})


class _HTTPStatus(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


def _describe(e: BaseException, timeout_s: float) -> str:
    if isinstance(e, _HTTPStatus):
        return f"HTTP {e.status}" + (": no /metrics here" if e.status == 404 else "")
    if type(e).__name__ == "NoGPU":
        return str(e)
    if isinstance(e, TimeoutError):
        return f"timeout after {timeout_s:g} s"
    return f"{type(e).__name__}: {e}" if str(e) else type(e).__name__


def _commands(origin: list[int], have_origin: threading.Event, stop: threading.Event,
              quit_: threading.Event) -> None:
    for raw in sys.stdin:
        cmd = raw.split()
        if cmd[:1] == ["origin"] and len(cmd) == 2:
            origin[0] = int(cmd[1])
            have_origin.set()
        elif cmd == ["stop"]:
            stop.set()
    quit_.set()  # the parent is gone or wants no last sample
    stop.set()


def _yield_to_the_client() -> None:
    """On the client's own core, a parse must give way at once to a client woken by a chunk:
    SCHED_IDLE (Linux) is preempted by any normal task's wake-up; else the lowest nice. Set before
    the threads start, which inherit it."""
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))  # type: ignore[attr-defined]
    except (AttributeError, OSError):
        with contextlib.suppress(AttributeError, OSError):
            os.nice(19)


def main(argv: list[str]) -> int:
    spec = orjson.loads(argv[1])
    _yield_to_the_client()
    lines: queue.Queue[dict[str, Any]] = queue.Queue()
    stop, quit_, have_origin = threading.Event(), threading.Event(), threading.Event()
    origin = [time.perf_counter_ns()]
    threading.Thread(target=_commands, args=(origin, have_origin, stop, quit_), daemon=True).start()
    sources = [Source(u, spec, lines, stop, quit_) for u in spec["sources"]]
    for s in sources:
        s.start()
    labels = [s.label for s in sources]
    first_seen: set[str] = set()
    answered: set[str] = set()
    done: set[str] = set()
    latest: dict[str, dict[str, float]] = {}
    held: list[dict[str, Any]] = []
    ready = False
    stopped_at: float | None = None

    def emit(obj: dict[str, Any]) -> None:
        sys.stdout.write(orjson.dumps(obj).decode() + "\n")
        sys.stdout.flush()

    def finished() -> bool:
        if len(done) == len(labels):
            return True
        if stopped_at is None:
            return False
        # After a stop, only sources that ever answered get their last sample, within FINAL_TIMEOUT_S.
        return (all(x in done or x not in answered for x in labels)
                or time.monotonic() - stopped_at > FINAL_TIMEOUT_S)

    with open(spec["out"], "ab") as f:
        def write_held() -> None:
            for line in held:
                t_ns = line.pop("t_ns")
                f.write(orjson.dumps({"t_s": round((t_ns - origin[0]) / 1e9, 6), **line}) + b"\n")
            held.clear()
            f.flush()

        while not quit_.is_set():
            if stop.is_set() and stopped_at is None:
                stopped_at = time.monotonic()
            if finished():
                break
            try:
                line = lines.get(timeout=0.05 if stopped_at is not None else 0.2)
            except queue.Empty:
                continue
            if line.get("done"):
                done.add(line["source"])
                continue
            first_seen.add(line["source"])
            if not ready and len(first_seen) == len(labels):
                ready = True
                emit({"ready": True})
            if line.get("ok"):
                answered.add(line["source"])
                latest[line["source"]] = line["known"]
                emit({"known": _combined(latest.values())})
            held.append(line)
            if have_origin.is_set() or stop.is_set():
                write_held()
        write_held()  # no origin ever came (the run failed first): on the scraper's own clock
    emit({"cpu_s": time.process_time()})
    return 0


def _combined(per_source: Any) -> dict[str, float]:
    """Known gauges over sources at one moment: counts and watts add up, a usage ratio is the fullest."""
    out: dict[str, float] = {}
    for known in per_source:
        for k, v in known.items():
            out[k] = max(out.get(k, v), v) if k == "kv_cache_usage" else out.get(k, 0.0) + v
    return out


if __name__ == "__main__":
    sys.exit(main(sys.argv))
