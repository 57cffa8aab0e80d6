"""Data the installed tool needs. ``builtin.jsonl`` is a link to ``datasets/builtin.jsonl`` in the
repository (where the prompt data is kept and documented); a built wheel carries a real copy."""
