"""One line, never a traceback (docs/faults.md), round three: the test server's own options, model
discovery against hostile /models answers, engine subcommands' refusals, scenario files that are
not scenarios, corrupt recipes for rerun, and report formats over wrong-typed summaries."""

from __future__ import annotations

import json
import socket
import time

import pytest

from faultserver import hold, response, serve
from loadtest.cli.main import main

pytestmark = pytest.mark.timeout(120)


# -- loadtest serve sim with hostile options ------------------------------------------------------

@pytest.mark.parametrize("args, says", [
    (["--port", "-1"], "port must be 0..65535, got -1"),
    (["--port", "70000"], "port must be 0..65535, got 70000"),
    (["--host", ""], "host must not be empty"),
    (["--host", "bad..host"], "--host 'bad..host' is not a host name or address"),
    (["--host", "999.1.1.1"], "cannot listen on 999.1.1.1"),
    (["--ttft-ms", "nan"], "must be finite"),
    (["--ttft-ms", "-1"], "must be >= 0"),
    (["--ttft-ms", "1e300"], "ttft_ms must be at most 86,400,000"),
    (["--tpot-ms", "1e300"], "tpot_ms must be at most"),
    (["--retry-after-s", "1e300"], "retry_after_s must be at most 86,400"),
    (["--prefill-tokens-per-s", "1e-300"], "prefill_tokens_per_s must be at least 0.001"),
    (["--prefill-tokens-per-s", "inf"], "prefill_tokens_per_s must be a finite number"),
    (["--embedding-dim", "1000000000000"], "embedding_dim must be at most 65,536"),
    (["--tool-call-rounds", "1", "--tool-calls-per-round", "1000000000000"], "tool_calls_per_round must be at most"),
    (["--metrics", "vllm", "--metrics-extra-series", "1000000000000"], "metrics_extra_series must be at most"),
    (["--metrics", "vllm", "--metrics-delay-ms", "1e300"], "metrics_delay_ms must be at most"),
    (["--transcript-words-per-s", "1e300"], "transcript_words_per_s must be at most"),
    (["--audio-tokens-per-s", "1e300"], "audio_tokens_per_s must be at most"),
    (["--template-tokens", "9000000000000000000"], "template_tokens must be at most 10,000,000"),
    (["--image-tokens", "9000000000000000000"], "image_tokens must be at most"),
    (["--output-tokens", "99999999999999999999999"], "is too large (at most 2^63-1)"),
    (["--embedding-dim", "-1"], "embedding_dim must be >= 1"),
    (["--log-chunks", "/nonexistent-dir/chunks.jsonl"], "log_chunks /nonexistent-dir/chunks.jsonl: cannot append"),
    (["--log-chunks", "/"], "log_chunks /: cannot append to it: Is a directory"),
    (["--prompt-tokenizer", "/nonexistent-dir/tok"], "no such local directory"),
])
def test_serve_sim_refuses_hostile_options(refused, tmp_path, args, says):
    """A day-long TTFT, a 10^12-float embedding, 10^12 tool calls or extra series were accepted:
    each request then overflowed a timer (a 400 'callback error') or the server ran out of memory
    and died; 'bad..host' was an internal error (UnicodeError); a chunk log in a missing directory
    was reported as 'cannot listen on HOST:PORT'."""
    refused(["serve", "sim", "--port", "0", *args], tmp_path / "out", says)


def test_serve_sim_on_a_port_in_use(refused, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        refused(["serve", "sim", "--port", str(port)], tmp_path / "out", f"cannot listen on 127.0.0.1:{port}")


# -- loadtest models and discovery against hostile /models answers ------------------------------

def _answer(body: bytes, status: int = 200, content_type: str = "application/json"):
    def behaviour(server, sock, n, head):
        sock.sendall(response(status, body, content_type))
    return behaviour


def _redirect_loop(server, sock, n, head):
    sock.sendall(f"HTTP/1.1 301 Moved\r\nLocation: http://127.0.0.1:{server.port}/v1/models\r\n"
                 f"Content-Length: 0\r\n\r\n".encode())


NESTED_OWNER = b'{"data":[{"id":"m","owned_by":' + b'{"a":' * 1000 + b"1" + b"}" * 1000 + b"}]}"


@pytest.mark.parametrize("behaviour, says", [
    (_answer(b'{"data":' + b"[" * 100_000 + b"]" * 100_000 + b"}"), "did not answer an OpenAI model list"),
    (_answer(b"<html><body><h1>500 Internal Server Error</h1></body></html>", 500, "text/html"),
     "answered HTTP 500: HTML page: 500 Internal Server Error"),
    (_redirect_loop, "answered HTTP 301"),
    (_answer(b'{"data":{"id":"a"}}'), "did not answer an OpenAI model list"),
    (_answer(b"[1, 2]"), "did not answer an OpenAI model list"),
    (_answer(b'{"data":[{"id":"\xff\xfe"}]}'), "did not answer an OpenAI model list"),
])
def test_models_of_an_answer_that_is_not_a_list(refused, tmp_path, behaviour, says):
    with serve(behaviour) as server:
        refused(["models", "--endpoint", server.base_url, "--timeout", "5"], tmp_path / "out", says)
        refused(["single", "--endpoint", server.base_url, "--timeout", "5", "--num-prompts", "1", "--quiet",
                 "--output", str(tmp_path / "out")], tmp_path / "out", "lists no model")


@pytest.mark.parametrize("data, shown", [
    ([{"id": "a"}, {"id": "a"}, {"id": "b"}], ["a", "b"]),  # a duplicate was listed twice
    ([{"id": "a", "owned_by": [1, 2]}, {"id": "b", "owned_by": {"x": 1}}, {"id": "c", "owned_by": 7}], ["a", "b", "c"]),
    ([{"id": 1}, {"id": None}, {"id": [1]}, {"id": {"a": 1}}, {"id": True}, 5, "x", None], []),
    ([{"id": "a\x1b[2Jb\nc"}, {"id": "x" * 5000}, {"id": "ok"}], ["ok"]),  # an escape sequence; a 5,000-char id
])
def test_models_lists_only_ids_that_are_names(capsys, data, shown):
    with serve(_answer(json.dumps({"data": data}).encode())) as server:
        assert main(["models", "--endpoint", server.base_url, "--timeout", "5"]) == 0
    out = capsys.readouterr().out
    if not shown:
        assert "lists no model" in out
        return
    rows = [line.split()[0] for line in out.splitlines()[2:]]
    assert rows == shown
    assert "[1, 2]" not in out and "{" not in out and "\x1b" not in out  # owned_by not a string: '-'


def test_models_of_a_deeply_nested_owner(capsys):
    """owned_by nested 1,000 deep: an internal error (RecursionError) when the table showed it."""
    with serve(_answer(NESTED_OWNER)) as server:
        assert main(["models", "--endpoint", server.base_url, "--timeout", "5"]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines()[2].split() == ["m", "-"] and not err


def test_models_of_a_huge_list_is_cut_in_the_table(capsys):
    """200,000 models: the table shows the first 1,000 and says how many more (3,000,000 took 37 s)."""
    body = b'{"data":[' + b",".join(b'{"id":"m%d"}' % i for i in range(200_000)) + b"]}"
    with serve(_answer(body)) as server:
        assert main(["models", "--endpoint", server.base_url, "--timeout", "20"]) == 0
    out = capsys.readouterr().out
    assert len(out.splitlines()) == 2 + 1000 + 1
    assert "and 199,000 more models (200,000 in all; --json prints the whole answer)" in out


def test_a_stalled_models_answer_is_bounded_by_timeout(refused, tmp_path):
    """Discovery for a run waited 10 s whatever --timeout said; now the smaller of the two."""
    with serve(lambda server, sock, n, head: hold(server)) as server:
        for argv in (["models"], ["single", "--num-prompts", "1", "--quiet", "--output", str(tmp_path / "out")]):
            t0 = time.monotonic()
            refused([*argv, "--endpoint", server.base_url, "--timeout", "1"], tmp_path / "out",
                    "no complete response within 1 s")
            assert time.monotonic() - t0 < 4


def test_a_reply_nested_too_deep_is_a_malformed_record(tmp_path, capsys):
    """A 200 body nested 1,000 deep: msgspec's RecursionError was an internal error (2 requests) or
    a run of '0/0 requests' with exit 0 (1 request); now each request is recorded as malformed."""
    with serve(_answer(NESTED_OWNER)) as server:
        code = main(["single", "--endpoint", server.base_url, "--model", "m", "--num-prompts", "2", "--quiet",
                     "--output", str(tmp_path / "run")])
    records = [json.loads(line) for line in (tmp_path / "run" / "requests.jsonl").read_text().splitlines()]
    assert code == 2 and [r["error_kind"] for r in records] == ["malformed", "malformed"]
    assert "nested too deep" in records[0]["error"]
    assert "internal error" not in capsys.readouterr().err


# -- loadtest engine: refusals only (nothing here installs) ---------------------------------------

def test_engine_install_refuses_a_directory_it_cannot_use(refused, tmp_path, monkeypatch):
    """--dir a file was 'File exists' (exit 1) after the recipe was chosen; now checked first."""
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    refused(["engine", "install", "bogus"], tmp_path / "out", "argument ENGINE: invalid choice: 'bogus'")
    refused(["engine", "install", "--dir", str(a_file), "llamacpp"], tmp_path / "out", "is a file, not a directory")
    refused(["engine", "install", "--dir", str(a_file / "sub"), "vllm"], tmp_path / "out",
            "is not a writable directory: Not a directory")
    monkeypatch.setenv("LOADTEST_HOME", str(a_file))
    refused(["engine", "install", "transformers"], tmp_path / "out",
            f"the engines directory {a_file}/engines is not a writable directory")


# -- scenario files that are not scenarios ------------------------------------------------------

def _bomb() -> str:
    text, prev = 'command: single\na: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n', "a"
    for name in "bcdefghi":
        text += f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]\n"
        prev = name
    return text + f"endpoint: *{prev}\n"


@pytest.mark.parametrize("name, content, says", [
    ("bomb.yaml", _bomb(), "expands to more than 100,000 values (a YAML alias bomb?)"),
    ("loop.yaml", "command: single\nendpoint: &a [*a]\n", "nested more than 32 levels deep"),
    ("huge.toml", 'command = "single"\nendpoint = "' + "x" * 10_000_000 + '"\n', "over 1,048,576 bytes"),
    ("long.toml", 'command = "single"\nendpoint = "' + "x" * 500_000 + '"\n',
     "endpoint: a text of 500,000 characters (at most 100,000)"),
    ("nested.toml", 'command = "single"\nx = ' + "[" * 100_000 + "]" * 100_000 + "\n", "nested too deep to read"),
    ("nested.yaml", "command: single\nx: " + "[" * 100_000 + "]" * 100_000 + "\n", "nested too deep to read"),
    ("tables.toml", 'command = "single"\n[' + ".".join(["a"] * 100) + "]\nb = 1\n", "nested more than 32 levels"),
    ("intkey.yaml", "command: single\n1: 2\n", "1: a key must be a name, not int"),
    ("null.yaml", "command: single\nendpoint: null\n", "endpoint: null is not a value"),
    ("binary.toml", bytes(range(256)).decode("latin-1"), "not valid TOML"),
    ("empty.toml", "", "command: missing"),
    ("empty.yaml", "", "the top level must be a table of options"),
    ("date.yaml", "command: single\nmax-tokens: 2001-12-14\n", "max-tokens: '2001-12-14' is not an integer"),
    ("pyobj.yaml", 'command: !!python/object/apply:os.system ["echo no"]\n', "not valid YAML"),
])
@pytest.mark.parametrize("command", ["validate", "run"])
def test_scenario_files_that_are_not_scenarios(refused, tmp_path, name, content, says, command):
    """An alias bomb ran until stopped (60 s and on), 100,000 brackets and an integer key were
    internal errors, a 10 MB value passed validate ('Argument list too long' when run), a YAML null
    became '--endpoint None'."""
    path = tmp_path / name
    path.write_bytes(content.encode("latin-1" if name == "binary.toml" else "utf-8"))
    refused([command, str(path), "--output", str(tmp_path / "out")], tmp_path / "out", says)


def test_scenario_file_that_is_a_directory_or_not_utf8(refused, tmp_path):
    (tmp_path / "dir.toml").mkdir()
    refused(["validate", str(tmp_path / "dir.toml")], tmp_path / "out", "cannot read it (Is a directory)")
    (tmp_path / "bad.toml").write_bytes(b'command = "single"\nendpoint = "\xff\xfe"\n')
    refused(["run", str(tmp_path / "bad.toml")], tmp_path / "out", "not valid TOML")


# -- rerun of a recipe whose options have the wrong types ------------------------------------------

@pytest.mark.parametrize("key, value, says", [
    ("num_prompts", "x", "option num_prompts is 'x', not int"),
    ("max_tokens", None, "option max_tokens is None"),
    ("max_tokens", [1], "option max_tokens is [1]"),
    ("concurrency", {"a": 1}, "option concurrency is {'a': 1}"),
    ("stream", 3, "option stream is 3, not bool"),
    ("timeout_s", "x", "option timeout_s is 'x'"),
])
def test_rerun_of_a_recipe_with_wrong_types(refused, sim, tmp_path, key, value, says):
    """Each was an internal error (TypeError) in the run."""
    s = sim(ttft_ms=1, tpot_ms=1, output_tokens=2)
    run = tmp_path / "run"
    assert main(["single", "--endpoint", s.base_url, "--model", "sim-model", "--num-prompts", "1",
                 "--max-tokens", "2", "--quiet", "--output", str(run)]) == 0
    summary = json.loads((run / "summary.json").read_text())
    summary["config"][key] = value
    (run / "summary.json").write_text(json.dumps(summary))
    refused(["rerun", str(run), "--endpoint", s.base_url, "--output", str(tmp_path / "out")],
            tmp_path / "out", says)
