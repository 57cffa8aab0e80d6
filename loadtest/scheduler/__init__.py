"""When requests start: load shapes (pure), phases (warm-up, measured, cooldown) and the loops
that execute them. Knows nothing of LLMs: a job is an awaitable taking an index."""

ARRIVALS = ("poisson", "constant", "gamma")
"""How an open loop spaces its starts (shapes.OpenLoop). Here, import-free, so --help can list them."""
