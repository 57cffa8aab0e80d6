"""Judgements on a run: objectives (SLOs, goodput), the monitors that watch the client while it
runs (event-loop delay, host CPU), and the verdict on whether the measurement is valid."""
