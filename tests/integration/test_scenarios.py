"""``loadtest run FILE`` against the test server: a suite's runs with their inherited keys, the
command line overriding the file, --repeat from a file, and a run that cannot start."""

from __future__ import annotations

import json
from pathlib import Path

from loadtest.cli.main import main


def load(path: Path) -> dict:
    return json.loads((path / "summary.json").read_text())


def test_a_suite_runs_each_run_with_the_keys_it_inherits_and_the_overrides(sim, tmp_path, capsys):
    s = sim(ttft_ms=2, tpot_ms=1)
    scenario = tmp_path / "suite.toml"
    scenario.write_text(f"""
command = "throughput"
endpoint = "{s.base_url}"
model = "sim-model"
max-tokens = 8
num-prompts = 4
quiet = true
output = "{tmp_path / 'suite'}"

[[runs]]
name = "closed"
concurrency = 2

[[runs]]
name = "open"
request-rate = 50
max-concurrency = 2
max-tokens = 4

[[runs]]
name = "one"
command = "single"
stream = false
seed = 3
""")
    assert main(["run", str(scenario), "--max-tokens", "6"]) == 0
    closed, opened, one = (load(tmp_path / "suite" / n) for n in ("closed", "open", "one"))
    assert closed["config"]["concurrency"] == 2 and closed["config"]["request_rate"] is None
    assert opened["config"]["request_rate"] == 50 and opened["config"]["max_concurrency"] == 2
    assert one["command"] == "single" and one["config"]["stream"] is False and one["config"]["seed"] == 3
    for summary in (closed, opened, one):  # the command line beats the file, top level and run alike
        assert summary["config"]["max_tokens"] == 6 and summary["config"]["num_prompts"] == 4
        assert summary["counts"]["completed"] == 4 and summary["metrics"]["completion_tokens_total"] == 24
    err = capsys.readouterr().err
    assert "scenario: 1/3 runs[0] (closed): loadtest throughput" in err and "3 of 3 runs succeeded" in err


def test_a_file_can_ask_for_repeats_and_the_command_line_can_swap_the_amount(sim, tmp_path):
    s = sim(ttft_ms=2, tpot_ms=1)
    scenario = tmp_path / "one.toml"
    scenario.write_text(f'command = "single"\nendpoint = "{s.base_url}"\nnum-prompts = 50\nmax-tokens = 4\n'
                        f'repeat = 2\nquiet = true\noutput = "{tmp_path / "g"}"\n')
    assert main(["run", str(scenario), "--num-prompts", "3"]) == 0
    group = load(tmp_path / "g")
    assert group["repeat"]["runs"] == 2 and group["counts"]["requests"] == 6


def test_a_run_that_cannot_start_is_one_line_and_the_suite_goes_on(sim, tmp_path, capsys):
    s = sim(ttft_ms=2, tpot_ms=1)
    taken = tmp_path / "suite" / "first"
    taken.mkdir(parents=True)
    (taken / "summary.json").write_text("{}")
    scenario = tmp_path / "suite.toml"
    scenario.write_text(f'command = "single"\nendpoint = "{s.base_url}"\nnum-prompts = 2\nmax-tokens = 4\n'
                        f'quiet = true\noutput = "{tmp_path / "suite"}"\n[[runs]]\nname = "first"\n'
                        '[[runs]]\nname = "second"\n')
    assert main(["run", str(scenario)]) == 2
    err = capsys.readouterr().err
    assert "runs[0] (first): --output" in err and "already holds a run" in err and "Traceback" not in err
    assert load(tmp_path / "suite" / "second")["counts"]["completed"] == 2


def test_an_invalid_file_runs_nothing(sim, tmp_path, capsys):
    s = sim(ttft_ms=2, tpot_ms=1)
    scenario = tmp_path / "bad.toml"
    scenario.write_text(f'command = "single"\nendpoint = "{s.base_url}"\noutput = "{tmp_path / "out"}"\n'
                        '[[runs]]\nnum-prompts = 2\n[[runs]]\nnum-prompts = "two"\n')
    assert main(["run", str(scenario)]) == 2
    assert "runs[1].num-prompts: 'two' is not an integer" in capsys.readouterr().err
    assert s.stats()["requests_received"] == 0 and not (tmp_path / "out").exists()


def test_a_converted_vllm_command_line_runs_as_vllm_would_have(sim, tmp_path, capsys):
    s = sim(prompt_tokenizer="cl100k_base", tokenize_endpoint=True, ttft_ms=1, tpot_ms=0.5)
    scenario = tmp_path / "from-vllm.toml"
    line = (f"vllm bench serve --base-url {s.root_url} --model sim-model --dataset-name random --random-input-len 40 "
            "--random-output-len 12 --num-prompts 6 --max-concurrency 2 --seed 5")
    assert main(["convert", "--output", str(scenario), line]) == 0
    assert main(["run", str(scenario), "--output", str(tmp_path / "out"), "--quiet"]) == 0
    summary = load(tmp_path / "out")
    config = summary["config"]
    assert (config["api"], config["request_rate"], config["max_concurrency"]) == ("completions", "inf", 2)
    assert (config["prompt_tokens"], config["max_tokens"], config["ignore_eos"], config["seed"]) == (40, 12, True, 5)
    rows = [json.loads(line) for line in (tmp_path / "out" / "requests.jsonl").read_text().splitlines()]
    assert len(rows) == 6 and all(r["prompt_tokens"] == 40 and r["completion_tokens"] == 12 for r in rows)
