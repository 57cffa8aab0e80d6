"""Issue #26, the last leftovers: rerun of a recipe that is unbounded or out of its options' ranges,
a multi-turn session's turn stopped during a 429 retry wait (its 429s kept), --api transcriptions
against hostile usage. Against the test server on loopback."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.timeout(60)


# -- a session's turn cancelled at the deadline during a rate-limit retry wait -------------------------

def test_session_turn_stopped_in_a_retry_wait_keeps_its_429s(cli, sim, tmp_path):
    s = sim(ttft_ms=2, tpot_ms=1, rate_limit_every=3, retry_after_s=5)  # every 3rd arrival: 429, wait 5 s
    code, summary, rows = cli(["throughput", "--endpoint", s.base_url, "--model", "sim-model", "--max-tokens", "4",
                               "--dataset", "synthetic", "--prompt-tokens", "8", "--turns", "3", "--concurrency", "1",
                               "--duration", "1"], tmp_path / "out")
    assert code == 0
    stopped = [r for r in rows if r.get("error_kind") == "cancelled"]
    assert len(stopped) == 1, rows
    rec = stopped[0]
    assert rec["session_id"] is not None and rec["turn"] >= 1  # a later turn of a session
    assert rec["rate_limited"] == 1 and rec["attempts"] == 1 and 0 < rec["retry_wait_s"] <= 5
    assert sum(r["rate_limited"] for r in rows) == s.stats()["rate_limited"] == 1
