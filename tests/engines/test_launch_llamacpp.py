"""The launcher against the real llama.cpp server (xllamacpp or llama-server) on the embedded SmolLM2.

Needs `make engine-llamacpp`; skipped otherwise. Checks what a benchmark relies on: the server
streams with usage, the record says how it was started, and no process survives stop().
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from engine_checks import alive, require_engine
from loadtest.launch.launcher import LaunchSpec, launch
from loadtest.launch.process import process_tree

pytestmark = [pytest.mark.engine, pytest.mark.timeout(300)]


@pytest.fixture(scope="module", autouse=True)
def installed() -> None:
    require_engine("llamacpp")


def test_llamacpp_streams_with_usage_and_stops_clean(tmp_path: Path) -> None:
    spec = LaunchSpec("llamacpp", slots=2, ctx_size=1024, log_dir=tmp_path)
    with launch(spec) as server:
        tree = process_tree(server.pid, server.pid)
        assert server.model_name == "smollm2"
        assert "ignore_eos" in server.accepted_fields
        models = httpx.get(server.base_url + "/models", timeout=10).json()
        assert any(m.get("id") == "smollm2" for m in models["data"])

        body = {"model": server.model_name, "stream": True, "stream_options": {"include_usage": True},
                "max_tokens": 16, "ignore_eos": True,
                "messages": [{"role": "user", "content": "Count from one to ten in words."}]}
        chunks, usage, done = [], None, False
        with httpx.stream("POST", server.base_url + "/chat/completions", json=body, timeout=60) as r:
            assert r.status_code == 200
            for line in r.iter_lines():
                if line == "data: [DONE]":
                    done = True
                elif line.startswith("data: "):
                    d = json.loads(line[6:])
                    if d.get("choices") and d["choices"][0]["delta"].get("content"):
                        chunks.append(d["choices"][0]["delta"]["content"])
                    usage = d.get("usage") or usage
        assert done and chunks
        assert usage is not None and usage["completion_tokens"] == 16   # ignore_eos honoured

        info = server.info
        assert info["engine"] == "llamacpp" and info["engine_version"]
        assert info["model"]["sha256"] and info["model"]["file_size_bytes"] > 50_000_000
        assert info["quantisation"] == "Q4_1" and info["slots"] == 2 and info["ctx_size"] == 1024
        assert info["ready_s"] < 60 and Path(info["log_path"]).is_file()
        assert isinstance(info["launch_command"]["argv"], list) and info["launch_command"]["shell"]
        res = server.resources()
        assert res["rss_peak_mb"] and res["rss_peak_mb"] > 50
    assert tree and alive(tree) == []
    assert not server.alive()
