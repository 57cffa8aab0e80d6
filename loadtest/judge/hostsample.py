"""Host CPU by owner, for monitors.HostMonitor: which local process serves the endpoint, its
process tree, and cheap samples of the host's, the client's and that tree's CPU time.

Finding the server (walking every process's sockets) and its tree costs tens of milliseconds of
/proc reading: done once, before the run. A sample during the run only reads /proc/stat and a few
/proc/<pid>/stat files (~0.1 ms), so a sampling thread barely holds the GIL the event loop needs
(a thread that walked /proc on every sample delayed arrival stamps by milliseconds)."""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import psutil


def _is_local(host: str) -> bool:
    if host in ("localhost", ""):
        return True
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        try:
            addr = ipaddress.ip_address(socket.gethostbyname(host))
        except OSError:
            return False
    return addr.is_loopback or str(addr) in {a.address for addrs in psutil.net_if_addrs().values() for a in addrs}


def server_pid(base_url: str) -> int | None:
    """The local process listening on the endpoint's port (None when remote or not visible)."""
    parts = urlsplit(base_url)
    if not parts.hostname or not _is_local(parts.hostname):
        return None
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        for c in psutil.net_connections(kind="tcp"):
            if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port and c.pid:
                return int(c.pid)
    except (psutil.Error, OSError):
        return None
    return None


def process_tree(pid: int | None) -> list[psutil.Process]:
    """The process and its descendants now (engines start their workers before they serve)."""
    if not pid:
        return []
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def _cpu_s(procs: Sequence[psutil.Process]) -> float:
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            continue  # gone: its time so far stays in the earlier samples
    return total


def _busy(t: Any) -> float:
    return sum(getattr(t, f, 0.0) for f in ("user", "nice", "system", "irq", "softirq", "steal"))


class Sampler:
    """Every ``interval_s`` on a daemon thread: (seconds, host busy, client, server tree) CPU seconds
    over the interval. The client is this process (the sampling thread included)."""

    def __init__(self, base_url: str, interval_s: float) -> None:
        self.interval_s = interval_s
        self.server_pid = server_pid(base_url)
        self.server = process_tree(self.server_pid)
        self.me = psutil.Process()
        self.samples: list[list[float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="loadtest-host-sampler", daemon=True)

    def _snap(self) -> list[float]:
        me = self.me.cpu_times()
        return [time.monotonic(), _busy(psutil.cpu_times()), me.user + me.system, _cpu_s(self.server)]

    def _run(self) -> None:
        prev: list[float] | None = None
        while True:
            try:
                now = self._snap()
            except (OSError, psutil.Error):  # out of open files (EMFILE) or /proc gone: skip this one
                now = None
            if now is not None:
                if prev is not None:  # a skipped sample widens the next interval: its seconds say so
                    self.samples.append([b - a for a, b in zip(prev, now)])
                prev = now
            if self._stop.wait(self.interval_s):
                return

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> list[list[float]]:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2)
        return self.samples
