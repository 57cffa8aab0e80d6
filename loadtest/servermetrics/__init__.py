"""The server's side of a run: its Prometheus /metrics (and the GPUs' NVML counters) sampled by a
child process through the run (scrape.py, driven by scraper.py), understood through a known-metric
map per engine (engines.py), and summed up over the measured window (window.py). See
docs/server-metrics.md."""
