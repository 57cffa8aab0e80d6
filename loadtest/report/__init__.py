"""``loadtest report``: saved runs in, comparison tables, plots and an HTML page out.

load (read run directories) -> tables (group, pivot) + fit + cost -> render / plots / html; build
wires them. Kept import-free so the CLI can register the command without loading numpy.
"""
