"""--ray-address: the scale-out workers as Ray actors on a local cluster started in the test (two
CPUs, two actors): the merged results are exact, and the cluster leaves no process behind."""

from __future__ import annotations

import psutil
import pytest

ray = pytest.importorskip("ray", reason="ray not installed (pip install 'loadtest[ray]')")

pytestmark = [pytest.mark.ray, pytest.mark.timeout(300)]


def _ray_processes() -> list[psutil.Process]:
    me = psutil.Process()
    out = []
    for p in me.children(recursive=True):
        try:
            if any(k in " ".join(p.cmdline()) for k in ("ray", "raylet", "gcs_server")):
                out.append(p)
        except psutil.Error:
            continue
    return out


def test_two_ray_actors_merge_exactly_and_shut_down_clean(cli, sim, tmp_path):
    s = sim(ttft_ms=5, tpot_ms=1, output_tokens=12)
    args = ["throughput", "--endpoint", s.base_url, "--model", "sim-model", "--max-tokens", "16",
            "--concurrency", "4", "--num-prompts", "24", "--warmup", "2", "--seed", "5"]
    code1, one, rows1 = cli(args, tmp_path / "one")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        code2, two, rows2 = cli([*args, "--workers", "2", "--ray-address", "auto"], tmp_path / "ray")
        during = _ray_processes()
    finally:
        ray.shutdown()
    assert code1 == code2 == 0
    assert one["counts"] == two["counts"] and two["counts"]["completed"] == 24
    assert one["metrics"]["completion_tokens_total"] == two["metrics"]["completion_tokens_total"]
    pick = ("id", "prompt_id", "completion_tokens", "warmup")
    assert sorted(tuple(r[k] for k in pick) for r in rows1) == sorted(tuple(r[k] for k in pick) for r in rows2)
    assert two["run"]["scale_out"]["backend"] == "ray"
    workers = two["run"]["workers"]
    assert len(workers) == 2 and all(w["ended"] == "done" for w in workers)
    assert len({w["pid"] for w in workers}) == 2  # two actors, two processes
    assert during  # the check below would see the cluster's processes (gcs_server, raylet, workers)
    gone, alive = psutil.wait_procs(during, timeout=30)
    assert not alive, [p.cmdline() for p in alive]
