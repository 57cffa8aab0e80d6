"""Scenario files checked without running (cli/scenariofile.py, ``loadtest validate``): one line per
problem with the key's path, every value checked by the command's own argparse definitions, and
the command line overriding the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from loadtest.cli.main import build_parser, main
from loadtest.cli.scenariofile import plan as plan_with
from loadtest.cli.scenariofile import read
from loadtest.errors import ConfigError

SUITE = """
command = "throughput"
endpoint = "http://127.0.0.1:9/v1"
max-tokens = 16
output = "results/suite"

[[runs]]
name = "c8"
concurrency = 8
num-prompts = 20

[[runs]]
name = "rate"
request_rate = 4
duration = 30
no-stream = true
extra-body = {top_k = 3}
header = {X-Test = "1"}
slo = ["ttft=0.5", "e2e:p99=2"]

[[runs]]
command = "sweep"
concurrency = [1, 2, 4]
repeat = 3
"""


def plan(data, overrides):
    sub = build_parser()._subparsers._group_actions[0]
    return plan_with(data, overrides, sub.choices)


def write(tmp_path: Path, text: str, name: str = "s.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_a_suite_becomes_each_commands_own_command_line(tmp_path):
    runs, problems = plan(read(write(tmp_path, SUITE)), [])
    assert problems == []
    assert [(r.where, r.name, r.command) for r in runs] == [("runs[0]", "c8", "throughput"),
                                                             ("runs[1]", "rate", "throughput"),
                                                             ("runs[2]", None, "sweep")]
    c8, rate, sweep = (r.argv for r in runs)
    assert c8 == ["--endpoint", "http://127.0.0.1:9/v1", "--max-tokens", "16", "--output", "results/suite/c8",
                  "--concurrency", "8", "--num-prompts", "20"]
    assert {"--request-rate", "4", "--duration", "30", "--no-stream", '{"top_k": 3}', "X-Test: 1"} <= set(rate)
    text = "command = 'single'\nendpoint = 'http://h:1/v1'\nstream = false\nignore_eos = true\npreconnect = true\n"
    switch = plan(read(write(tmp_path, text)), [])[0][0].argv
    # named by destination: the flag when the value is the one it sets, else left out
    assert switch == ["--endpoint", "http://h:1/v1", "--no-stream", "--ignore-eos"]
    assert rate.count("--slo") == 2 and "--header" in rate and "--extra-body" in rate
    assert sweep[sweep.index("--concurrency") + 1] == "1,2,4" and "results/suite/3-sweep" in sweep
    assert sweep[sweep.index("--repeat") + 1] == "3"


@pytest.mark.parametrize("text,line", [
    ("command = 'single'\nendpoint = 'http://h:1/v1'\nconcurency = 2\n",
     "concurency: unknown option of `loadtest single`"),
    ("command = 'throughput'\nendpoint = 'http://h:1/v1'\nconcurency = 2\n", "(did you mean concurrency?)"),
    ("[[runs]]\ncommand = 'single'\n[[runs]]\ncommand = 'throughput'\nconcurrency = 0\n",
     "runs[1].concurrency: must be >= 1, got 0"),
    ("endpoint = 'http://h:1/v1'\n[[runs]]\ncommand = 'single'\n[[runs]]\ncommand = 'single'\nmax_tokens = 'many'\n",
     "runs[1].max_tokens: 'many' is not an integer"),
    ("command = 'single'\napi = 'soap'\n", "api: must be one of chat, completions, responses, messages, embeddings, rerank, transcriptions, got 'soap'"),
    ("command = 'single'\nno-stream = 'yes'\n", "no-stream: must be true or false, got 'yes'"),
    ("command = 'single'\ntemperature = true\n", "temperature: takes a value, not true"),
    ("command = 'throughput'\nendpoint = 'http://h:1/v1'\nconcurrency = 2\nnum-prompts = 5\nduration = 5\n",
     "argument --duration: not allowed with argument --num-prompts"),
    ("command = 'throughput'\nendpoint = 'http://h:1/v1'\n", "throughput needs --concurrency N"),
    ("command = 'single'\nendpoint = 'http://h:1/v1'\nrepeat = 2\nuntil-ci = 5\n", "N >= 3"),
    ("command = 'explode'\n", "command: 'explode' is not a command"),
    ("endpoint = 'http://h:1/v1'\n", "command: missing"),
    ("command = 'single'\nruns = 3\n", "runs: must be a non-empty list of tables"),
    ("[[runs]]\ncommand = 'single'\nname = 'a/b'\n", "runs[0].name: must be a short text without '/'"),
])
def test_each_problem_is_one_line_with_the_keys_path(tmp_path, capsys, text, line):
    assert main(["validate", str(write(tmp_path, text))]) == 2
    err = capsys.readouterr().err
    assert line in err and "Traceback" not in err
    assert all(row.startswith("loadtest: error: ") for row in err.splitlines())


def test_every_problem_of_a_file_is_listed_not_just_the_first(tmp_path, capsys):
    text = "command = 'throughput'\n[[runs]]\nconcurrency = 0\n[[runs]]\nconcurency = 1\n[[runs]]\nmax-tokens = -1\n"
    assert main(["validate", str(write(tmp_path, text))]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 3 and [e.split(": ")[3] for e in err] == [
        "runs[0].concurrency", "runs[1].concurency", "runs[2].max-tokens"]


def test_a_valid_file_says_so(tmp_path, capsys):
    assert main(["validate", str(write(tmp_path, SUITE))]) == 0
    assert "valid: 3 runs (c8, rate, sweep)" in capsys.readouterr().out


def test_command_line_options_override_the_files(tmp_path):
    data = read(write(tmp_path, "command = 'throughput'\nendpoint = 'http://h:1/v1'\nconcurrency = 4\n"
                                "num-prompts = 8\nheader = ['A: 1', 'B: 2']\n"))
    (run,), problems = plan(data, ["--concurrency", "2", "--duration", "3", "--header", "C: 3"])
    assert problems == []
    assert run.argv.count("--concurrency") == 1 and run.argv[run.argv.index("--concurrency") + 1] == "2"
    assert "--num-prompts" not in run.argv  # --duration replaces it (one of a mutually exclusive pair)
    assert [run.argv[i + 1] for i, w in enumerate(run.argv) if w == "--header"] == ["C: 3"]


def test_a_suites_output_on_the_command_line_holds_a_directory_per_run(tmp_path):
    runs, problems = plan(read(write(tmp_path, SUITE)), ["--output", "elsewhere"])
    assert problems == []
    assert [r.argv[r.argv.index("--output") + 1] for r in runs] == ["elsewhere/c8", "elsewhere/rate",
                                                                    "elsewhere/3-sweep"]


def test_yaml_and_unreadable_files(tmp_path):
    pytest.importorskip("yaml")
    path = write(tmp_path, "command: single\nendpoint: http://h:1/v1\nruns:\n  - num-prompts: 3\n  - seed: 4\n",
                 "s.yaml")
    runs, problems = plan(read(path), [])
    assert problems == [] and len(runs) == 2 and "--num-prompts" in runs[0].argv and "--seed" in runs[1].argv
    with pytest.raises(ConfigError, match="not valid TOML"):
        read(write(tmp_path, "command = [\n"))
    with pytest.raises(ConfigError, match="the top level must be a table"):
        read(write(tmp_path, "- 1\n- 2\n", "list.yaml"))
    with pytest.raises(ConfigError, match="cannot read it"):
        read(tmp_path / "missing.toml")
