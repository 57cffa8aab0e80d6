"""Run the simulated server as a child process, for tests and benchmarks.

A separate process (optionally pinned to its own core) keeps the server's CPU time out of the
client's, which is the point when the client's own overhead is what is being measured.
"""

from __future__ import annotations

import atexit
import http.client
import json
import os
import re
import selectors
import subprocess
import sys
import tempfile
import time
import weakref
from dataclasses import replace
from pathlib import Path
from typing import Any

from loadtest.errors import LaunchError
from loadtest.sim.config import SimConfig

LISTENING_PREFIX = "loadtest-sim listening on "
"""The one stdout line of a test server, a contract: ``announce`` prints it, ``SimProcess`` reads the port."""
_LISTENING = re.compile(rb"^loadtest-sim listening on http://(\[[^\]]+\]|[^:/]+):(\d+)/v1\s*$")
_live: weakref.WeakSet[SimProcess] = weakref.WeakSet()


def announce(host: str, port: int) -> None:
    """The listening line, printed by the server once its socket listens."""
    shown = f"[{host}]" if ":" in host else host
    print(f"{LISTENING_PREFIX}http://{shown}:{port}/v1", flush=True)


class SimProcess:
    """A ``python -m loadtest.sim`` child; use as a context manager so it is always stopped."""

    def __init__(self, config: SimConfig | None = None, *, cpu: int | None = None,
                 startup_timeout_s: float = 15.0) -> None:
        self.config = config or SimConfig()
        self.cpu = cpu
        self.startup_timeout_s = startup_timeout_s
        self.port: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._stderr: Any = None

    @property
    def host(self) -> str:
        """Where to connect: a wildcard bind address is reached through loopback."""
        host = self.config.host
        return {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(host, host)

    @property
    def root_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def base_url(self) -> str:
        return self.root_url + "/v1"

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    def start(self) -> SimProcess:
        """Spawn the child and wait for its listening line; raises ``LaunchError`` with its stderr."""
        if self._proc is not None:
            raise RuntimeError("SimProcess already started")
        env = dict(os.environ)
        # Make the package importable in the child even when it is not installed.
        package_root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
        self._stderr = tempfile.TemporaryFile()  # a file, not a pipe: a chatty child can never block on it
        cmd = [sys.executable, "-m", "loadtest.sim", *self.config.to_args(), "--exit-on-stdin-eof"]
        self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr,
                                      env=env, close_fds=True)
        _live.add(self)
        try:
            if self.cpu is not None:
                os.sched_setaffinity(self._proc.pid, {self.cpu})
            self.port = self._read_port()
        except BaseException as exc:
            detail = self._stderr_text()
            self.stop()
            if isinstance(exc, LaunchError):
                raise LaunchError(f"{exc}{': ' + detail if detail else ''}") from None
            if isinstance(exc, OSError):
                raise LaunchError(f"loadtest-sim: cannot pin to cpu {self.cpu}: {exc}") from exc
            raise
        return self

    def _read_port(self) -> int:
        assert self._proc is not None and self._proc.stdout is not None
        fd = self._proc.stdout.fileno()
        deadline = time.monotonic() + self.startup_timeout_s
        buf = b""
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            while b"\n" not in buf:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise LaunchError(f"loadtest-sim did not report listening within {self.startup_timeout_s:g} s")
                if sel.select(left):
                    data = os.read(fd, 4096)
                    if not data:
                        code = self._proc.wait(timeout=5)
                        raise LaunchError(f"loadtest-sim exited with status {code} before listening")
                    buf += data
        line = buf.split(b"\n", 1)[0]
        match = _LISTENING.match(line)
        if match is None:
            raise LaunchError(f"loadtest-sim printed an unexpected first line: {line!r}")
        return int(match.group(2))

    def _stderr_text(self, limit: int = 4000) -> str:
        if self._stderr is None:
            return ""
        try:
            self._stderr.seek(0)
            return self._stderr.read().decode(errors="replace").strip()[-limit:]
        except (OSError, ValueError):
            return ""

    def _request(self, method: str, path: str) -> Any:
        if self.port is None:
            raise RuntimeError("SimProcess is not running")
        # http.client rather than httpx: no proxy environment variables can reroute a loopback call.
        conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
        try:
            conn.request(method, path)
            response = conn.getresponse()
            body = response.read()
            if response.status != 200:
                raise RuntimeError(f"loadtest-sim {method} {path}: HTTP {response.status} {body[:200]!r}")
            return json.loads(body)
        finally:
            conn.close()

    def stats(self) -> dict[str, Any]:
        """The server's /sim/stats: counts, server-side TTFTs, and schedule lateness."""
        return self._request("GET", "/sim/stats")

    def reset(self) -> None:
        """Zero the server's stats (in-flight replies keep running)."""
        self._request("POST", "/sim/reset")

    def stop(self) -> None:
        """Stop the child and reap it; escalates stdin EOF -> SIGTERM -> SIGKILL. Safe to call twice."""
        proc, self._proc = self._proc, None
        _live.discard(self)
        if proc is not None:
            try:
                if proc.poll() is None:
                    for ask in (lambda: self._close_stdin(proc), proc.terminate, proc.kill):
                        ask()
                        try:
                            proc.wait(timeout=5)
                            break
                        except subprocess.TimeoutExpired:
                            continue
                    else:
                        proc.wait()
            finally:
                for stream in (proc.stdin, proc.stdout):
                    if stream is not None:
                        try:
                            stream.close()
                        except OSError:
                            pass
        self.port = None
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    @staticmethod
    def _close_stdin(proc: subprocess.Popen[bytes]) -> None:
        if proc.stdin is not None:
            try:
                proc.stdin.close()
            except OSError:
                pass

    def __enter__(self) -> SimProcess:
        if self._proc is None:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"SimProcess(pid={self.pid}, base_url={self.base_url if self.port else None!r})"


def start_sim(config: SimConfig | None = None, *, cpu: int | None = None, **overrides: Any) -> SimProcess:
    """Start a sim child on a free port (unless the config names one); ``overrides`` are SimConfig fields."""
    config = replace(config or SimConfig(), **overrides)
    return SimProcess(config, cpu=cpu).start()


@atexit.register
def _stop_all() -> None:
    # Last line of defence for a parent that forgot stop(); a killed parent is covered by stdin EOF.
    for sim in list(_live):
        sim.stop()
