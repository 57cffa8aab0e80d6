"""The seeded order in which a run sends its prompts, produced one pass at a time."""

from __future__ import annotations

import random

from loadtest.prompts.sources import Prompt, sample_prompts


class PromptOrder:
    """Position ``i`` of sample_prompts' seeded order, one pass (permutation) at a time: a long
    --duration run holds two passes, not a list that grows with every request."""

    def __init__(self, prompts: list[Prompt], seed: int) -> None:
        self.prompts = prompts
        self.seed = seed
        self._rng = random.Random(seed)
        self._passes: dict[int, list[Prompt]] = {}
        self._next_pass = 0

    def __getitem__(self, i: int) -> Prompt:
        n = len(self.prompts)
        k = i // n
        perm = self._passes.get(k)
        if perm is None:
            if k < self._next_pass:  # an old pass asked for again: rebuild it from the start
                return sample_prompts(self.prompts, (k + 1) * n, self.seed)[i]
            while self._next_pass <= k:
                perm = list(self.prompts)
                self._rng.shuffle(perm)  # the same draws sample_prompts makes
                self._passes[self._next_pass] = perm
                self._passes.pop(self._next_pass - 2, None)
                self._next_pass += 1
        return perm[i % n]  # type: ignore[index]
