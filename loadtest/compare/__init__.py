"""`loadtest compare`: two saved runs (or two repeat groups) in, a verdict per metric out.

sides.py reads each side (a run directory, or a group of rep-1..N runs) and checks that the two
measured the same thing; metrics.py lists what is compared and which way is better; analyze.py
runs the tests (loadtest/stats) and adjusts for testing many metrics at once; gate.py turns
``--fail-if`` rules into an exit code; render.py writes the table, Markdown, JSON or JUnit XML.
"""
