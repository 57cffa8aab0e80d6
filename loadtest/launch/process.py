"""Start, wait for, and stop an engine's process tree: the one implementation every engine uses.

Engines spawn helpers (vLLM's engine core and workers, uvicorn, docker's client), so "stop the
server" must mean "stop every process it started", or a failed benchmark leaves gigabytes of RAM
and a bound port behind. The child gets its own session (so the terminal's Ctrl-C reaches only us,
and we stop it in order) and is stopped through its process group plus any descendant that left
the group; every live child is also stopped at interpreter exit.
"""

from __future__ import annotations

import atexit
import ctypes
import http.client
import os
import shlex
import signal
import socket
import subprocess
import threading
import time
from collections import deque
from pathlib import Path
from typing import Callable, Iterable

from loadtest.errors import LaunchError

_LIVE: "set[ManagedProcess]" = set()
_LIVE_LOCK = threading.Lock()


def _stop_all() -> None:
    with _LIVE_LOCK:
        live = list(_LIVE)
    for proc in live:
        try:
            proc.stop()
        except Exception:  # noqa: BLE001 - at exit, keep stopping the others
            pass


atexit.register(_stop_all)


def free_port(host: str = "127.0.0.1") -> int:
    """A port free right now; the engine binds it a moment later (a tiny race we accept)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def probe_host(host: str) -> str:
    """Where to connect to reach a server bound to `host` (a wildcard bind is reached on loopback)."""
    return {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)


def http_ready(host: str, port: int, path: str, timeout_s: float = 2.0) -> bool:
    """True when GET path answers 200. http.client, not httpx: no proxy settings can interfere."""
    conn = http.client.HTTPConnection(probe_host(host), port, timeout=timeout_s)
    try:
        conn.request("GET", path)
        return conn.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


def shell_command(argv: list[str], env: dict[str, str] | None = None) -> str:
    """The command as one line a person can paste into a shell."""
    prefix = [f"{k}={shlex.quote(v)}" for k, v in (env or {}).items()]
    return " ".join(prefix + [shlex.quote(a) for a in argv])


def _proc_table() -> dict[int, tuple[int, int, str, int]]:
    """pid -> (ppid, pgid, state, start time) for every process, from /proc/PID/stat."""
    table: dict[int, tuple[int, int, str, int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                data = f.read()
        except OSError:
            continue
        # the command name may contain spaces and parentheses: split after the last ')'
        fields = data[data.rfind(b")") + 2:].split()
        table[int(entry)] = (int(fields[1]), int(fields[2]), fields[0].decode(), int(fields[19]))
    return table


def process_tree(root: int, pgid: int | None = None) -> list[int]:
    """root, its live descendants, and members of process group `pgid`; zombies excluded."""
    table = _proc_table()
    children: dict[int, list[int]] = {}
    for pid, (ppid, *_rest) in table.items():
        children.setdefault(ppid, []).append(pid)
    found: list[int] = []
    queue = deque([root] if root in table else [])
    queue.extend(pid for pid, row in table.items() if pgid is not None and row[1] == pgid)
    seen: set[int] = set()
    while queue:
        pid = queue.popleft()
        if pid in seen:
            continue
        seen.add(pid)
        if table.get(pid, (0, 0, "Z", 0))[2] not in ("Z", "X"):
            found.append(pid)
        queue.extend(children.get(pid, ()))
    return found


def _set_pdeathsig() -> None:
    """In the child: die with SIGTERM if the launcher dies without cleaning up (e.g. SIGKILL)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG = 1
    except Exception:  # noqa: BLE001 - best effort only
        pass


class ManagedProcess:
    """One engine process tree with a log file; `stop()` is idempotent and also runs at exit."""

    def __init__(self, argv: list[str], *, log_path: Path, env: dict[str, str] | None = None,
                 cwd: Path | None = None, grace_s: float = 10.0, name: str = "engine",
                 cleanup_argv: list[str] | None = None) -> None:
        self.argv = list(argv)
        self.env_overrides = dict(env or {})
        self.log_path = Path(log_path)
        self.cwd = cwd
        self.grace_s = grace_s
        self.name = name
        self.cleanup_argv = cleanup_argv   # e.g. `docker rm -f NAME`, run after the tree is gone
        self.popen: subprocess.Popen | None = None
        self.started_at: float | None = None
        self._lock = threading.Lock()
        self._stopped = False
        self._tree_seen: dict[int, int] = {}   # pid -> start time, so a reused pid is never signalled

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen else None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        log.write(f"# {time.strftime('%Y-%m-%dT%H:%M:%S')} loadtest launch: "
                  f"{shell_command(self.argv, self.env_overrides)}\n".encode())
        log.flush()
        env = {**os.environ, **self.env_overrides}
        in_main = threading.current_thread() is threading.main_thread()
        try:
            self.popen = subprocess.Popen(
                self.argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                cwd=self.cwd, start_new_session=True,
                # PDEATHSIG fires when the *thread* that forked exits: only safe from the main thread
                preexec_fn=_set_pdeathsig if in_main else None,
            )
        except OSError as exc:
            raise LaunchError(f"could not start {self.name} ({self.argv[0]}): {exc}") from exc
        finally:
            log.close()  # the child holds its own descriptor
        self.started_at = time.monotonic()
        with _LIVE_LOCK:
            _LIVE.add(self)

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(max(0, f.seek(0, os.SEEK_END) - 64 * 1024))
                text = f.read().decode("utf-8", "replace")
        except OSError:
            return "(no log)"
        # progress bars rewrite one line with \r: keep only each line's last state
        rows = [r.rsplit("\r", 1)[-1] for r in text.replace("\r\n", "\n").split("\n")]
        return "\n".join([r for r in rows if r.strip()][-lines:])

    def wait_ready(self, probe: Callable[[], bool], timeout_s: float, interval_s: float = 0.25) -> float:
        """Seconds from start until `probe()` is true; LaunchError with the log tail otherwise."""
        assert self.popen is not None and self.started_at is not None
        deadline = self.started_at + timeout_s
        while True:
            rc = self.popen.poll()
            if rc is not None:
                raise LaunchError(
                    f"{self.name} exited with code {rc} before it was ready; "
                    f"last lines of {self.log_path}:\n{self.log_tail()}")
            self._remember_tree()
            if probe():
                return time.monotonic() - self.started_at
            if time.monotonic() >= deadline:
                raise LaunchError(
                    f"{self.name} was not ready after {timeout_s:.0f} s (raise it with --ready-timeout); "
                    f"last lines of {self.log_path}:\n{self.log_tail()}")
            time.sleep(interval_s)

    def _remember_tree(self) -> None:
        """Note descendants while the parent lives: after it dies, orphans lose the link to it."""
        if self.popen is not None:
            table = _proc_table()
            for pid in process_tree(self.popen.pid, self.popen.pid):
                if pid in table:
                    self._tree_seen[pid] = table[pid][3]

    def tree(self) -> list[int]:
        if self.popen is None:
            return []
        return process_tree(self.popen.pid, self.popen.pid)

    def stop(self) -> int | None:
        """SIGTERM the whole tree, SIGKILL what is left after `grace_s`, reap; returns the exit code."""
        with self._lock:
            if self._stopped or self.popen is None:
                return self.popen.returncode if self.popen else None
            self._stopped = True
        try:
            self._remember_tree()
            pgid = self.popen.pid   # start_new_session: the leader's pid is the group id
            self._signal(pgid, self._survivors(pgid), signal.SIGTERM)
            deadline = time.monotonic() + self.grace_s
            while time.monotonic() < deadline:
                self.popen.poll()
                if not self._survivors(pgid):
                    break
                time.sleep(0.05)
            else:
                self._signal(pgid, self._survivors(pgid), signal.SIGKILL)
            try:
                self.popen.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
            # orphans are reparented away from us: give init a moment to reap them
            end = time.monotonic() + 5
            while self._survivors(pgid) and time.monotonic() < end:
                self._signal(pgid, self._survivors(pgid), signal.SIGKILL)
                time.sleep(0.05)
        finally:
            if self.cleanup_argv:
                try:
                    subprocess.run(self.cleanup_argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                   timeout=30)
                except (OSError, subprocess.TimeoutExpired):
                    pass
            with _LIVE_LOCK:
                _LIVE.discard(self)
        return self.popen.returncode

    def _survivors(self, pgid: int) -> list[int]:
        live = set(process_tree(pgid, pgid))
        table = _proc_table()
        live.update(p for p, start in self._tree_seen.items()
                    if p in table and table[p][3] == start and table[p][2] not in ("Z", "X"))
        return sorted(live)

    @staticmethod
    def _signal(pgid: int, pids: Iterable[int], sig: int) -> None:
        try:
            os.killpg(pgid, sig)
        except (ProcessLookupError, PermissionError):
            pass
        for pid in pids:
            try:
                os.kill(pid, sig)
            except (ProcessLookupError, PermissionError):
                pass
