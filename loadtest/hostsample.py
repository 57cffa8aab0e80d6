"""The host-CPU sampler, run as a child process of the client (``python -m loadtest.hostsample``)
by monitors.HostMonitor. Light on purpose (psutil and the standard library only): it must start
fast even on a host that is busy, the case it exists to report."""

from __future__ import annotations

import ipaddress
import json
import select
import socket
import sys
import time
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


def _tree_cpu_s(procs: dict[int, psutil.Process], root: psutil.Process | None) -> float:
    """CPU seconds of a process tree; processes seen once keep being counted while they live."""
    if root is None:
        return 0.0
    try:
        for p in [root, *root.children(recursive=True)]:
            procs.setdefault(p.pid, p)
    except psutil.Error:
        pass
    total = 0.0
    for pid, p in list(procs.items()):
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            procs.pop(pid, None)
    return total


def _busy(t: Any) -> float:
    return sum(getattr(t, f, 0.0) for f in ("user", "nice", "system", "irq", "softirq", "steal"))


def sample(client_pid: int, base_url: str, interval_s: float, stop: Any) -> dict[str, Any]:
    """Sample until ``stop(timeout)`` returns True: per interval (seconds, host busy, client,
    server tree, this sampler) in CPU seconds. Runs in its own process (see monitors.HostMonitor)."""
    pid = server_pid(base_url)
    server = psutil.Process(pid) if pid else None
    client, me = psutil.Process(client_pid), psutil.Process()
    server_procs: dict[int, psutil.Process] = {}

    def snap() -> tuple[float, ...]:
        c, m = client.cpu_times(), me.cpu_times()
        return (time.monotonic(), _busy(psutil.cpu_times()), c.user + c.system, _tree_cpu_s(server_procs, server),
                m.user + m.system)

    samples = []
    prev = snap()
    while not stop(interval_s):
        now = snap()
        samples.append([b - a for a, b in zip(prev, now)])
        prev = now
    return {"cpu_count": psutil.cpu_count(), "server_pid": pid, "interval_s": interval_s, "samples": samples}


def _main(argv: list[str]) -> None:
    client_pid, base_url, interval_s = int(argv[0]), argv[1], float(argv[2])
    if not sys.stdin.readline():  # wait for "begin"; EOF: the run ended before measuring
        return

    def stop(timeout: float) -> bool:
        ready, _, _ = select.select([sys.stdin], [], [], timeout)
        return bool(ready)  # stdin readable = closed by the parent (it never writes)

    print(json.dumps(sample(client_pid, base_url, interval_s, stop)), flush=True)



if __name__ == "__main__":
    _main(sys.argv[1:])
