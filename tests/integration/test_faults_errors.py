"""One line, never a traceback (docs/faults.md): bad input and environment problems found where
they are read (exit 2, one ``loadtest: error:`` line naming the option or file), disk full
keeping whole records, and the CLI's net for what is left (a bug: exit 1, saying so)."""

from __future__ import annotations

import errno
import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from faultserver import response, serve
from loadtest.cli.main import main

pytestmark = pytest.mark.timeout(120)
LOADTEST = [sys.executable, "-m", "loadtest"]


def one_line(capsys: pytest.CaptureFixture[str], argv: list[str], code: int = 2) -> str:
    """main(argv) exits ``code`` with one ``loadtest: error:`` line (returned), no traceback."""
    try:
        got = main(argv)
    except SystemExit as exc:
        got = exc.code
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert got == code and "Traceback" not in err and len(lines) == 1, err
    assert lines[0].startswith("loadtest: error: "), err
    return lines[0]


def a_run(sim, directory: Path, *extra: str) -> list[str]:
    """A finished two-request run in ``directory``; returns the options to resume it."""
    s = sim(ttft_ms=1, tpot_ms=1)
    argv = ["single", "--endpoint", s.base_url, "--model", "sim-model", "--num-prompts", "2", "--max-tokens", "4",
            "--quiet", *extra]
    assert main([*argv, "--output", str(directory)]) == 0
    return argv


# -- --duration too short to measure anything ---------------------------------------------------

@pytest.mark.parametrize("duration", ["1e-9", "1e-4", "0.05"])
def test_a_duration_below_the_floor_is_refused(refused, tmp_path, duration):
    """A closed loop with --duration 1e-9 exited 0 having measured nothing (no request started)."""
    refused(["throughput", "--endpoint", "http://127.0.0.1:9/v1", "--model", "m", "--concurrency", "4",
             "--duration", duration, "--output", str(tmp_path / "out")], tmp_path / "out", "must be 0.1 s or more")


def test_a_duration_run_that_started_no_request_fails():
    """The outcome fails any --duration run that completed nothing, when none even started too."""
    from loadtest.run.outcome import failure

    result = {"counts": {"requests": 0, "completed": 0, "cancelled": 0}, "errors": {}}
    code, message = failure(result, abort=None, interrupted=False, worker_failure=None, duration_s=0.2)
    assert code == 2 and "no request completed within --duration 0.2 s" in message


# -- --resume of a directory whose files are not a run's -----------------------------------------

@pytest.mark.parametrize("spoil, says", [
    (lambda d: (d / "config.json").write_text("{bad"), "config.json is not valid JSON"),
    (lambda d: (d / "config.json").write_text("[1, 2]"), "config.json is not a loadtest run's config"),
    (lambda d: (d / "config.json").write_bytes(b"\xff\xfe"), "config.json is not valid JSON"),
    (lambda d: d.joinpath("requests.jsonl").write_bytes(d.joinpath("requests.jsonl").read_bytes() + b"[1]\n"),
     "requests.jsonl line 2 is not a request record"),
    (lambda d: d.joinpath("requests.jsonl").write_bytes(b"\xff\xfe\n" + d.joinpath("requests.jsonl").read_bytes()),
     "requests.jsonl line 1 is not JSON"),
])
def test_resume_of_files_that_are_not_a_run(sim, tmp_path, capsys, spoil, says):
    run = tmp_path / "run"
    argv = a_run(sim, run)
    rows = (run / "requests.jsonl").read_bytes().splitlines(keepends=True)
    (run / "requests.jsonl").write_bytes(rows[0])  # one request left to do
    spoil(run)
    capsys.readouterr()
    assert says in one_line(capsys, [*argv, "--resume", str(run)])


def test_resume_drops_only_a_cut_last_line(sim, tmp_path, capsys):
    run = tmp_path / "run"
    argv = a_run(sim, run)
    rows = (run / "requests.jsonl").read_bytes().splitlines(keepends=True)
    (run / "requests.jsonl").write_bytes(rows[0] + b'{"id": 1, "start')
    assert main([*argv, "--resume", str(run)]) == 0
    assert [json.loads(line)["id"] for line in (run / "requests.jsonl").read_bytes().splitlines()] == [0, 1]


# -- values the run could not write or use -------------------------------------------------------

@pytest.mark.parametrize("option", ["--seed", "--max-tokens", "--num-prompts", "--max-retries"])
def test_an_integer_past_64_bits_is_refused(refused, tmp_path, option):
    """It reached config.json, where orjson raised 'Integer exceeds 64-bit range' (exit 1)."""
    refused(["single", "--endpoint", "http://127.0.0.1:9/v1", "--model", "m", option, "9" * 23,
             "--output", str(tmp_path / "out")], tmp_path / "out", "is too large (at most 2^63-1)")


@pytest.mark.parametrize("endpoint, says", [
    ("http://[::1:8000/v1", "an IPv6 address goes in brackets"),
    ("http://::1:8000/v1", "an IPv6 address goes in brackets"),
    ("::1", "an IPv6 address goes in brackets"),
    ("http://[zz]/v1", "is not a valid URL"),
    ("http://:80/v1", "is not an http(s) URL"),
    ("ftp://host/v1", "is not an http(s) URL"),
])
def test_an_endpoint_that_is_not_a_url(refused, tmp_path, endpoint, says):
    refused(["single", "--endpoint", endpoint, "--model", "m", "--output", str(tmp_path / "out")],
            tmp_path / "out", says)


@pytest.mark.parametrize("command", [["single"], ["sweep", "--concurrency", "1,2"]])
@pytest.mark.parametrize("output, says", [("", "is empty"), ("/", "is the filesystem root")])
def test_output_empty_or_the_root_is_refused(refused, tmp_path, command, output, says):
    """--output '' wrote the run into the current directory, --output / into the root."""
    refused([*command, "--endpoint", "http://127.0.0.1:9/v1", "--model", "m", "--output", output],
            tmp_path / "out", says)


def test_destinations_that_cannot_be_written_are_refused_first(sim, tmp_path, capsys):
    """Checked before the work: a report, a comparison, plots, a sweep's root (a path under a
    file stands for a read-only place: the tests may run as root, where chmod stops nothing)."""
    run = tmp_path / "run"
    a_run(sim, run)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    capsys.readouterr()
    assert "is a directory" in one_line(capsys, ["report", str(run), "--output", str(tmp_path)])
    assert "its directory" in one_line(capsys, ["report", str(run), "--output", str(blocker / "r.md")])
    assert "--plots" in one_line(capsys, ["report", str(run), "--plots", str(blocker / "plots")])
    assert "its directory" in one_line(capsys, ["compare", str(run), str(tmp_path), "--output",
                                                 str(blocker / "c.md")])
    s = sim(ttft_ms=1, tpot_ms=1)
    line = one_line(capsys, ["sweep", "--endpoint", s.base_url, "--model", "sim-model", "--concurrency", "1,2",
                             "--num-prompts", "2", "--quiet", "--output", str(blocker / "sweep")])
    assert "is not a writable directory" in line


def test_report_by_a_key_no_run_has(sim, tmp_path, capsys):
    run = tmp_path / "run"
    a_run(sim, run)
    capsys.readouterr()
    line = one_line(capsys, ["report", str(run), "--by", "engine,bogus"])
    assert "--by bogus: no run has it; use engine, model, command, variant, run" in line
    assert main(["report", str(run), "--by", "max_tokens"]) == 0


def test_wandb_without_the_package_is_refused_before_the_run(refused, tmp_path, monkeypatch):
    """It was found after the whole run, when the results were logged."""
    monkeypatch.setitem(sys.modules, "wandb", None)  # importlib finds no wandb
    refused(["single", "--endpoint", "http://127.0.0.1:9/v1", "--model", "m", "--wandb", "proj",
             "--output", str(tmp_path / "out")], tmp_path / "out", "needs the wandb package")


@pytest.mark.parametrize("config, says", [
    ({"num_attention_heads": 0}, "num_attention_heads must be a positive integer, got 0"),
    ({"num_hidden_layers": -3}, "num_hidden_layers must be a positive integer, got -3"),
    ({"hidden_size": "x"}, "hidden_size must be a positive integer"),
    ({"model_type": "bert"}, "encoder-only model"),
    ({"model_type": "roberta"}, "encoder-only model"),
    ({"vocab_size": None}, "lacks vocab_size"),
])
def test_memory_of_a_config_the_formula_cannot_take(tmp_path, capsys, config, says):
    base = {"model_type": "llama", "hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32,
            "vocab_size": 32000}
    path = tmp_path / "config.json"
    path.write_text(json.dumps({**base, **config}))
    assert says in one_line(capsys, ["memory", str(path)])


@pytest.mark.parametrize("model, says", [("1e400", "is not a parameter count"), ("", "MODEL is empty")])
def test_memory_of_a_count_that_is_not_one(capsys, model, says):
    assert says in one_line(capsys, ["memory", model])


def test_a_model_list_with_ids_that_are_not_names(tmp_path, capsys):
    """Non-string, empty and missing ids are not models: an int id crashed 'the server offers'."""
    body = b'{"object": "list", "data": [{"id": 1}, {"id": null}, {"id": ""}, {"name": "x"}]}'

    def behaviour(server, sock, n, head):
        if b"/models" in head.split(b"\r\n")[0]:
            sock.sendall(response(200, body))
        else:
            sock.sendall(response(404, b'{"error": {"message": "no such model"}}'))

    with serve(behaviour) as server:
        assert main(["models", "--endpoint", server.base_url]) == 0
        assert "lists no model" in capsys.readouterr().out
        line = one_line(capsys, ["single", "--endpoint", server.base_url, "--num-prompts", "1", "--quiet",
                                 "--output", str(tmp_path / "a")])
        assert "lists no model" in line
        proc = subprocess.run([*LOADTEST, "single", "--endpoint", server.base_url, "--model", "nope",
                               "--num-prompts", "1", "--quiet", "--output", str(tmp_path / "b")],
                              capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and "TypeError" not in proc.stderr, proc.stderr


# -- disk full ---------------------------------------------------------------------------------

def _limit_file_size(limit: int):
    def apply() -> None:  # Python ignores SIGXFSZ: a write past the limit fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


def test_disk_full_during_a_run_keeps_whole_records(sim, tmp_path):
    """It was exit 1 'write to closed file', a half line, no summary (EFBIG under a file size
    limit stands for ENOSPC: the same failed write)."""
    s = sim(ttft_ms=1, tpot_ms=1)
    out = tmp_path / "out"
    proc = subprocess.run([*LOADTEST, "single", "--endpoint", s.base_url, "--model", "sim-model", "--num-prompts",
                           "40", "--max-tokens", "4", "--quiet", "--output", str(out)],
                          capture_output=True, text=True, timeout=60, preexec_fn=_limit_file_size(30_000))
    lines = [line for line in proc.stderr.splitlines() if line.startswith("loadtest:")]
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and len(lines) == 1, proc.stderr
    assert "cannot write" in lines[0] and "File too large" in lines[0] and "whole records" in lines[0]
    rows = (out / "requests.jsonl").read_bytes().splitlines(keepends=True)
    assert rows and all(row.endswith(b"\n") and json.loads(row) for row in rows)
    assert f"keeps the {len(rows)} whole records" in lines[0]
    assert not (out / "summary.json.tmp").exists()


def test_a_failed_write_leaves_no_part_of_the_line(tmp_path, monkeypatch):
    """The writer alone: the OS takes half a line, then says the disk is full."""
    from loadtest.run.output import RecordWriter, WriteFailed

    class RequestRecord:  # what the writer reads of a record: its error and its JSON line
        def __init__(self, id: int, start_s: float) -> None:
            self.error, self.line = None, json.dumps({"id": id, "start_s": start_s}).encode()

        def to_json(self) -> bytes:
            return self.line

    writer = RecordWriter(tmp_path)
    writer.write(RequestRecord(id=0, start_s=0.0))
    real_write = os.write
    calls = []

    def full(fd: int, data) -> int:
        calls.append(len(data))
        if len(calls) == 1:
            return real_write(fd, bytes(data[: len(data) // 2]))
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", full)
    with pytest.raises(WriteFailed) as caught:
        writer.write(RequestRecord(id=1, start_s=0.1))
    with pytest.raises(WriteFailed):
        writer.write(RequestRecord(id=2, start_s=0.2))  # refused at once, nothing written
    monkeypatch.setattr(os, "write", real_write)
    writer.close()
    assert caught.value.strerror == "No space left on device" and writer.count == 1 and len(calls) == 2
    assert [json.loads(line)["id"] for line in (tmp_path / "requests.jsonl").read_bytes().splitlines()] == [0]


def test_a_summary_that_cannot_be_written_is_one_line(tmp_path):
    from loadtest.errors import OutputError
    from loadtest.run.output import write_summary

    (tmp_path / "summary.json.tmp").mkdir()  # the temporary file cannot be made
    with pytest.raises(OutputError, match="cannot write .*summary.json"):
        write_summary(tmp_path, {"x": 1})


# -- the net for what nothing above expected ------------------------------------------------------

def test_an_unexpected_exception_is_called_a_bug(capsys, monkeypatch):
    from loadtest.cli import memory

    def broken(ns):
        raise RuntimeError("something\nunexpected")

    monkeypatch.setattr(memory, "main", broken)
    line = one_line(capsys, ["memory", "7b"], code=1)
    assert "internal error, a bug in loadtest (RuntimeError: something unexpected)" in line and "--debug" in line
