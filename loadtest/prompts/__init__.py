"""The prompt stage: prompt sources (builtin, files, LIMA), the seeded order a run sends them in,
and synthetic prompts of exact token length. ``builtin.jsonl`` ships here (a link to
datasets/builtin.jsonl in the repository; a built wheel carries a copy)."""
