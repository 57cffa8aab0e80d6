"""Statistics for decisions: distributions, tests and the bootstrap, in plain numpy and math.

Why its own package: `compare` (is B better than A?) and `report --slice` (is there a trend over
a run?) both need the same few tests, and nothing here knows what a run or a request is, so it
sits low in the floors (beside measure) where every reader of results may use it. scipy is not a
dependency for the few functions it would give: each function here is checked against a textbook
value in tests/unit/test_stats.py.
"""
