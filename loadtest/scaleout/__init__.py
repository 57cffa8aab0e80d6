"""One run spread over several client processes or Ray actors (``--workers``, ``--ray-address``):
the coordinator deals shares, each worker is an ordinary run on its share, and every record comes
back to one requests.jsonl, so the statistics are exact."""
