"""The report's tables as text: console table, Markdown, CSV (the runs table) or JSON."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from typing import Any

from tabulate import tabulate

from loadtest.report.tables import Table


def cells(table: Table, *, bold: str | None = None) -> list[list[str]]:
    """Formatted cells; the bold cells wrapped as `bold` says (e.g. "**{}**")."""
    out = []
    for i, row in enumerate(table.rows):
        line = []
        for c in table.columns:
            text = c.fmt(row.get(c.key)) if row.get(c.key) is not None else "-"
            if bold and (i, c.key) in table.bold and text != "-":
                text = bold.format(text)
            line.append(text)
        out.append(line)
    return out


def _text(table: Table, fmt: str) -> str:
    markdown = fmt == "markdown"
    body = cells(table, bold="**{}**" if markdown else "{} *")
    align = ["left" if i == 0 or not _numeric(table, c.key) else "right" for i, c in enumerate(table.columns)]
    grid = tabulate(body, headers=[c.label for c in table.columns], tablefmt="github" if markdown else "simple",
                    disable_numparse=True, colalign=align)
    head = f"### {table.title}" if markdown else f"{table.title}\n{'=' * len(table.title)}"
    notes = table.notes + (["* best in its row"] if table.bold and not markdown else [])
    if table.bold and markdown:
        notes = [*notes, "bold: best in its row"]
    tail = "\n".join(f"- {n}" if markdown else n for n in notes)
    return head + "\n\n" + grid + ("\n\n" + tail if tail else "")


def _numeric(table: Table, key: str) -> bool:
    return any(isinstance(r.get(key), (int, float)) and not isinstance(r.get(key), bool) for r in table.rows)


def _csv(table: Table) -> str:
    """Raw values (not the display format), so a spreadsheet gets numbers; floats to 6 significant
    digits so the file is stable across platforms."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow([c.key for c in table.columns])
    for row in table.rows:
        w.writerow(["" if (v := row.get(c.key)) is None else (f"{v:.6g}" if isinstance(v, float) else v)
                    for c in table.columns])
    return buf.getvalue()


def to_json(tables: Sequence[Table], extra: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"tables": [{"name": t.name, "title": t.title, "rows": t.rows, "notes": t.notes,
                        "best": sorted([i, k] for i, k in t.bold)} for t in tables], **(extra or {})}


def render_text(tables: Sequence[Table], fmt: str) -> str:
    if fmt == "csv":
        return _csv(tables[0])
    if fmt == "json":
        return json.dumps(to_json(tables), indent=2, default=str) + "\n"
    return "\n\n".join(_text(t, fmt) for t in tables) + "\n"
