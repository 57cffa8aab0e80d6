"""The simulated server's configuration (split from tests/integration/test_sim.py, which runs the
server): every option round-trips through its CLI flags, and unusable combinations are refused."""

from __future__ import annotations

import argparse
from typing import Any

import pytest

from loadtest.errors import ConfigError
from loadtest.cli.serve import sim_config as config_from_args, sim_options as add_arguments
from loadtest.sim import SimConfig

pytestmark = pytest.mark.timeout(60)


# -- configuration --------------------------------------------------------------------------------
def test_config_round_trips_through_cli_flags() -> None:
    cfg = SimConfig(port=1234, model="m", api_key="k", ttft_ms=1.5, tpot_ms=2.0, output_tokens=7,
                    tokens_per_chunk=3, empty_chunks=True, role_chunk=False, reasoning_tokens=2, usage=False,
                    usage_per_chunk=True, done=False, reject_stream_options=True, fail_every=3,
                    stream_error_after_tokens=4, crlf=True)
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert config_from_args(parser.parse_args(cfg.to_args())) == cfg
    assert config_from_args(parser.parse_args([])) == SimConfig(port=8000)


@pytest.mark.parametrize("bad", [dict(tokens_per_chunk=0), dict(ttft_ms=-1), dict(fail_status=200),
                                 dict(fail_every=2), dict(fail_status=500, disconnect_after_tokens=1),
                                 dict(output_tokens=0), dict(model="")])
def test_unusable_configs_are_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        SimConfig(**bad)
