"""The launcher against real vLLM (CPU build here) on the embedded SmolLM2. Opt-in and slow: needs
`make engine-vllm` (876 MB download), starts in ~2 min and takes ~4.3 GB RSS. Runs only with
LOADTEST_TEST_VLLM=1 (`make test-engine ENGINE=vllm` sets it), so `make test` stays fast."""

from __future__ import annotations

import json
import os
from pathlib import Path

import httpx
import pytest

from loadtest.errors import LaunchError
from loadtest.launch.launcher import LaunchSpec, ensure_engine, launch
from loadtest.launch.process import _proc_table

pytestmark = [pytest.mark.engine, pytest.mark.timeout(900)]


def test_vllm_streams_with_usage_and_stops_clean(tmp_path: Path) -> None:
    if os.environ.get("LOADTEST_TEST_VLLM") != "1":
        pytest.skip("opt-in: LOADTEST_TEST_VLLM=1 or `make test-engine ENGINE=vllm`")
    try:
        ensure_engine("vllm")
    except LaunchError as exc:
        pytest.skip(str(exc))
    seen: set[int] = set()
    with launch(LaunchSpec("vllm", log_dir=tmp_path)) as server:
        body = {"model": server.model_name, "stream": True, "stream_options": {"include_usage": True},
                "max_tokens": 16, "ignore_eos": True, "messages": [{"role": "user", "content": "Hi!"}]}
        usage, done = None, False
        with httpx.stream("POST", server.base_url + "/chat/completions", json=body, timeout=120) as r:
            assert r.status_code == 200
            for line in r.iter_lines():
                done = done or line == "data: [DONE]"
                if line.startswith("data: {"):
                    usage = json.loads(line[6:]).get("usage") or usage
        assert done and usage and usage["completion_tokens"] == 16
        seen.update(server._process._tree_seen)
        assert server.resources()["processes_max"] >= 2
    table = _proc_table()
    assert [p for p in seen if p in table and table[p][2] not in ("Z", "X")] == []
