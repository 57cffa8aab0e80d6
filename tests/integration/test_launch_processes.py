"""The engine launcher's processes (split from tests/unit/test_launch.py): process-tree handling, and
launch() end to end. No real engine runs here (tests/engines/ does that): a tiny Python HTTP server
stands in for llama-server, and `sh -c` trees stand in for multi-process engines.
"""

from __future__ import annotations

import os
import signal
import sys
import textwrap
import time
from pathlib import Path

import pytest

from loadtest.errors import LaunchError
from loadtest.launch.launcher import LaunchSpec, launch
from loadtest.launch.monitor import ResourceMonitor
from loadtest.launch.process import ManagedProcess, _proc_table, free_port, process_tree
from test_launch import root, write_gguf  # noqa: F401  (root: the fixture of a project with fake engine venvs)


# ------------------------------------------------------------------ process handling

def _alive(pids: list[int]) -> list[int]:
    table = _proc_table()
    return [p for p in pids if p in table and table[p][2] not in ("Z", "X")]


def _wait_tree(proc: ManagedProcess, n: int) -> list[int]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        tree = proc.tree()
        if len(tree) >= n:
            return tree
        time.sleep(0.05)
    raise AssertionError(f"tree never reached {n} processes: {proc.tree()}")


def test_stop_kills_whole_tree(tmp_path: Path) -> None:
    proc = ManagedProcess(["sh", "-c", "sleep 300 & sleep 300"], log_path=tmp_path / "log", grace_s=5)
    proc.start()
    tree = _wait_tree(proc, 3)
    t0 = time.monotonic()
    proc.stop()
    assert time.monotonic() - t0 < 5
    assert _alive(tree) == []
    proc.stop()  # twice is fine


def test_stop_kills_descendant_that_left_the_group(tmp_path: Path) -> None:
    # an engine helper that calls setsid() escapes killpg; the launcher tracks descendants too
    proc = ManagedProcess([sys.executable, "-c", "import os,subprocess,time; "
                           "subprocess.Popen(['sleep','300'], start_new_session=True); time.sleep(300)"],
                          log_path=tmp_path / "log", grace_s=5)
    proc.start()
    tree = _wait_tree(proc, 2)
    proc._remember_tree()
    proc.stop()
    assert _alive(tree) == []


def test_stop_escalates_to_sigkill(tmp_path: Path) -> None:
    proc = ManagedProcess(["sh", "-c", "trap '' TERM; sleep 300 & wait"], log_path=tmp_path / "log", grace_s=0.5)
    proc.start()
    tree = _wait_tree(proc, 2)
    proc.stop()
    assert _alive(tree) == [] and proc.popen.returncode == -signal.SIGKILL


def test_early_exit_shows_log_tail(tmp_path: Path) -> None:
    script = "for i in $(seq 1 40); do echo line$i; done; echo 'error: model file is corrupt'; exit 3"
    proc = ManagedProcess(["sh", "-c", script], log_path=tmp_path / "engine.log", name="engine test")
    proc.start()
    with pytest.raises(LaunchError) as err:
        proc.wait_ready(lambda: False, timeout_s=30)
    msg = str(err.value)
    assert "exited with code 3" in msg and "model file is corrupt" in msg and "line40" in msg
    assert "line10\n" not in msg          # only the tail
    assert str(tmp_path / "engine.log") in msg


def test_ready_timeout_error_and_cleanup(tmp_path: Path) -> None:
    proc = ManagedProcess(["sh", "-c", "echo loading; sleep 300"], log_path=tmp_path / "log", grace_s=2)
    proc.start()
    t0 = time.monotonic()
    with pytest.raises(LaunchError, match="not ready after 1 s(.|\n)*loading"):
        proc.wait_ready(lambda: False, timeout_s=1.0)
    assert time.monotonic() - t0 < 5
    tree = proc.tree()
    proc.stop()
    assert _alive(tree) == []


def test_missing_executable(tmp_path: Path) -> None:
    with pytest.raises(LaunchError, match="could not start"):
        ManagedProcess(["/nonexistent/engine"], log_path=tmp_path / "log").start()


def test_monitor_measures_tree(tmp_path: Path) -> None:
    proc = ManagedProcess([sys.executable, "-c", "x = bytearray(60_000_000)\nwhile True: pass"],
                          log_path=tmp_path / "log")
    proc.start()
    try:
        mon = ResourceMonitor(proc.pid, interval_s=0.2, gpu=None).start()
        time.sleep(1.5)
        mon.stop()
        s = mon.summary()
    finally:
        proc.stop()
    assert s["samples"] >= 3 and s["rss_peak_mb"] > 60 and s["cpu_peak_pct"] > 30
    assert s["gpu_mem_peak_mb"] is None


# ------------------------------------------------------------------ launch() end to end with a stand-in

FAKE_SERVER = textwrap.dedent("""\
    #!{python}
    import http.server, sys, time
    args = sys.argv[1:]
    port = int(args[args.index("--port") + 1])
    print("fake llama-server loading", flush=True)
    time.sleep(0.3)
    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if self.path == "/health" else 404)
            self.end_headers()
            self.wfile.write(b'{{"status":"ok"}}')
        def log_message(self, *a):
            pass
    http.server.HTTPServer(("127.0.0.1", port), H).serve_forever()
    """)


def _install_fake_llama_server(root: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Put a stand-in `llama-server` (a tiny HTTP server) first on PATH."""
    fake = root / "bin" / "llama-server"
    fake.parent.mkdir()
    fake.write_text(FAKE_SERVER.format(python=sys.executable))
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    return fake


def test_launch_end_to_end_with_stand_in(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = _install_fake_llama_server(root, monkeypatch)
    gguf = write_gguf(root / "Mini-Q8_0.gguf")
    spec = LaunchSpec("llamacpp", model=str(gguf), log_dir=root / "logs", threads=1, slots=2)
    with launch(spec) as server:
        pid = server.pid
        assert server.alive() and server.base_url.endswith("/v1") and server.model_name == "Mini-Q8_0"
        info = server.info
        assert info["engine"] == "llamacpp" and info["engine_variant"] == "llama-server"
        assert info["launch_command"]["argv"][0] == str(fake) and "--port" in info["launch_command"]["shell"]
        assert info["model"]["sha256"] and info["quantisation"] == "Q8_0"
        assert (info["threads"], info["slots"], info["ctx_size"]) == (1, 2, 2048)
        assert info["host"]["cores"] == os.cpu_count() and info["ready_s"] > 0.2
        assert "fake llama-server loading" in Path(info["log_path"]).read_text()
        tree = process_tree(pid, pid)
    assert _alive(tree) == []
    assert server.resources()["samples"] >= 1


def test_launch_stops_engine_when_body_raises(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _install_fake_llama_server(root, monkeypatch)
    spec = LaunchSpec("llamacpp", model=str(write_gguf(root / "m.gguf")), log_dir=root, port=free_port())
    with pytest.raises(KeyboardInterrupt):
        with launch(spec) as server:
            pid = server.pid
            raise KeyboardInterrupt
    assert _alive([pid]) == []
