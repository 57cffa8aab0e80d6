"""``loadtest convert``: other tools' command lines as scenario files, what does not translate said
line by line, and every file it writes accepted by ``loadtest validate``'s own rules."""

from __future__ import annotations

import shlex
import tomllib

import pytest

from loadtest.cli.convert import convert, split_words
from loadtest.cli.main import build_parser, main
from loadtest.cli.scenariofile import plan
from loadtest.errors import ConfigError

PARSERS = build_parser()._subparsers._group_actions[0].choices


def conv(line: str):
    return convert(split_words([line]))


def notes(c) -> str:
    return "\n".join(c.notes)


def test_vllm_defaults_are_spelled_out():
    c = conv("vllm bench serve --model m")
    assert c.command == "throughput"
    assert c.keys == {"endpoint": "http://127.0.0.1:8000/v1", "api": "completions", "model": "m",
                      "dataset": "synthetic", "prompt-tokens": 1024, "max-tokens": 128, "ignore-eos": True,
                      "num-prompts": 1000, "request-rate": "inf"}
    assert "default --request-rate is inf" in notes(c) and "special tokens" in notes(c)


def test_vllm_random_chat_open_loop():
    c = conv("python benchmarks/benchmark_serving.py --backend openai-chat --base-url http://gpu:8000 "
             "--endpoint /v1/chat/completions --served-model-name llama --model /models/llama "
             "--dataset-name random --random-input-len 500 --random-prefix-len 12 --random-output-len 64 "
             "--random-range-ratio 0.2 --request-rate 8 --burstiness 0.5 --max-concurrency 16 --num-prompts 300 "
             "--num-warmups 4 --temperature 0 --top-k 5 --goodput ttft:500 e2el:2000 --header x-a=1 --seed 9 "
             "--percentile-metrics ttft,e2el --lora-modules a b")
    k = c.keys
    assert k["endpoint"] == "http://gpu:8000/v1" and k["api"] == "chat" and k["model"] == "llama"
    assert (k["prompt-tokens"], k["shared-prefix-tokens"], k["max-tokens"]) == (512, 12, 64)
    assert k["prompt-tokens-stddev"] == pytest.approx(500 * 0.2 / 3 ** 0.5, abs=0.05)
    assert (k["request-rate"], k["arrival"], k["burstiness"], k["max-concurrency"]) == (8.0, "gamma", 0.5, 16)
    assert (k["num-prompts"], k["warmup"], k["temperature"], k["seed"]) == (300, 4, 0.0, 9)
    assert k["extra-body"] == '{"top_k": 5}' and k["slo"] == ["ttft=500ms", "e2e=2000ms"] and k["header"] == ["x-a: 1"]
    text = notes(c)
    assert "--random-range-ratio 0.2" in text and "--percentile-metrics: loadtest reports" in text
    assert "--lora-modules: no loadtest equivalent; left out" in text


def test_vllm_sharegpt_file():
    c = conv("vllm bench serve --dataset-name sharegpt --dataset-path data/sg.json --request-rate 2")
    assert c.keys["dataset"] == "data/sg.json" and "max-tokens" not in c.keys
    assert "recorded reply length" in notes(c)


@pytest.mark.parametrize("line,command,expected", [
    ("guidellm benchmark --target http://h:8000 --profile synchronous --max-requests 50", "single",
     {"num-prompts": 50}),
    ("guidellm benchmark run --target http://h:8000 --rate-type synchronous --max-seconds 60", "throughput",
     {"concurrency": 1, "duration": 60.0}),
    ("guidellm benchmark --target http://h:8000 --profile concurrent --rate 8 --max-requests 100", "throughput",
     {"concurrency": 8, "num-prompts": 100}),
    ("guidellm benchmark --target http://h:8000 --profile poisson --rate 5 --max-seconds 30 --warmup 0.1",
     "throughput", {"request-rate": 5.0, "arrival": "poisson", "duration": 30.0, "warmup": "3s"}),
    (("guidellm benchmark --target http://h:8000 --profile constant --rate 1 --rate 2 --max-requests 40 "
     "--warmup 0.25"), "sweep", {"request-rate": "1,2", "num-prompts": 40, "warmup": 10}),
    ("guidellm benchmark --target http://h:8000 --profile throughput --max-requests 200", "throughput",
     {"request-rate": "inf", "num-prompts": 200}),
    ("guidellm benchmark --target http://h:8000 --profile sweep --max-seconds 20 --rampup 5", "sweep",
     {"request-rate": "auto", "duration": 20.0, "ramp-up": 5.0}),
])
def test_guidellm_profiles(line, command, expected):
    c = conv(line + " --data prompt_tokens=128,output_tokens=32 --random-seed 4")
    assert c.command == command
    assert expected.items() <= c.keys.items()
    assert (c.keys["prompt-tokens"], c.keys["max-tokens"], c.keys["ignore-eos"], c.keys["seed"]) == (128, 32, True, 4)
    assert "loadtest's tpot_s" in notes(c)


def test_aiperf_closed_and_open_loops():
    c = conv("aiperf profile -m llama -u localhost:9000 --endpoint-type chat --concurrency 4 --request-count 80")
    assert c.keys["no-stream"] is True and "only with --streaming" in notes(c)
    assert (c.keys["endpoint"], c.keys["concurrency"], c.keys["num-prompts"]) == ("http://localhost:9000", 4, 80)
    assert c.keys["prompt-tokens"] == 550 and "550 tokens" in notes(c)
    c = conv("genai-perf profile -m llama --url http://h:1 --streaming --request-rate 10 --concurrency 50 "
             "--benchmark-duration 60 --extra-inputs ignore_eos:true --extra-inputs top_k:3 --output-tokens-mean 99")
    assert (c.keys["request-rate"], c.keys["max-concurrency"], c.keys["duration"]) == (10.0, 50, 60.0)
    assert c.keys["ignore-eos"] is True and c.keys["extra-body"] == '{"top_k": 3}' and c.keys["max-tokens"] == 99
    assert "no-stream" not in c.keys and "taken as Poisson" in notes(c)


@pytest.mark.parametrize("line", [
    "vllm bench serve --model m",
    ("vllm bench serve --backend openai-chat --endpoint /v1/chat/completions --dataset-name random "
    "--random-range-ratio 0.5 --request-rate 3 --burstiness 2 --max-concurrency 8 --goodput ttft:100 tpot:10"),
    ("guidellm benchmark --target http://h:8000 --profile concurrent --rate 1,2,4 --max-seconds 10 --warmup 2 "
    "--cooldown 1 --data prompt_tokens=64,output_tokens=16"),
    "guidellm benchmark --target http://h:8000 --profile sweep --max-requests 30 --data prompt_tokens=64",
    "aiperf profile -m x --url h:1 --streaming --request-rate 2 --request-count 9 --synthetic-input-tokens-stddev 5",
])
def test_every_converted_file_is_a_valid_scenario(line, tmp_path, capsys):
    out = tmp_path / "s.toml"
    assert main(["convert", "--output", str(out), line]) == 0
    data = tomllib.loads(out.read_text())
    runs, problems = plan(data, [], PARSERS)
    assert problems == [] and len(runs) == 1
    assert main(["validate", str(out)]) == 0
    assert "# converted by `loadtest convert`" in out.read_text()
    assert "convert: wrote" in capsys.readouterr().err


def test_what_is_missing_is_said_in_the_file(capsys):
    assert main(["convert", "guidellm benchmark --profile synchronous --max-requests 5"]) == 0
    out = capsys.readouterr().out
    assert "# note: to fill in before it runs: --endpoint is required" in out
    assert tomllib.loads(out)["command"] == "single"


def test_words_after_a_double_dash_and_one_line_errors(capsys):
    assert main(["convert", "--", "aiperf", "profile", "-m", "x", "--url", "h:1", "--api-key", "sk-hidden-123456"]) == 0
    out = capsys.readouterr().out
    assert "sk-hidden-123456" not in out and "never written to a scenario file" in out
    assert main(["convert", "wrk -t2 http://h/"]) == 2
    err = capsys.readouterr().err
    assert "convert reads a `vllm bench serve`" in err and err.count("\n") == 1
    with pytest.raises(ConfigError, match="not usable"):
        conv("vllm bench serve --request-rate fast")
    assert split_words([shlex.join(["vllm", "bench", "serve", "--model", "a b"])])[-1] == "a b"
