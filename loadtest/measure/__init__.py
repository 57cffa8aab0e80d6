"""From stamped bytes to numbers: SSE and chunk decoding, the per-request record, tokens per
chunk (and the post-run exact count), run-level metrics, and the definitions of every metric."""
