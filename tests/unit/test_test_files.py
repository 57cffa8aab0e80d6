"""The test tree itself: pytest imports test modules by their basename (no __init__.py in the test
folders), so two files of one name in different tiers cannot be collected together. A run of one
tier passes and `make test` (every tier) fails at collection: this catches it in the unit tier."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def test_every_test_file_name_is_unique_across_the_tiers() -> None:
    names = Counter(p.name for p in TESTS.rglob("test_*.py"))
    assert len(names) > 100  # the tree was found
    assert [n for n, k in names.items() if k > 1] == []
