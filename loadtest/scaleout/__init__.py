"""One run spread over several client processes or Ray actors (``--workers``, ``--ray-address``):
the coordinator deals shares, each worker is an ordinary run on its share, and every record comes
back to one requests.jsonl, so the statistics are exact."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from loadtest.config import RunConfig
    from loadtest.prompts.sources import Prompt


def make_coordinator(cfg: RunConfig, prompts: list[Prompt], server_info: Any, *, workers: int, on_failure: str,
                ray_address: str | None) -> Any:
    """The coordinator for this backend: local processes, or Ray actors with ``ray_address``."""
    from loadtest.scaleout.coordinator import Coordinator

    assert cfg.output_dir is not None
    if ray_address:
        from loadtest.scaleout.ray_actors import RayCoordinator

        return RayCoordinator(cfg, prompts, directory=cfg.output_dir, workers=workers, on_failure=on_failure,
                              server_info=server_info, address=ray_address)
    return Coordinator(cfg, prompts, directory=cfg.output_dir, workers=workers, on_failure=on_failure,
                       server_info=server_info)
