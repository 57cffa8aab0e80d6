"""``loadtest report --format html``: one self-contained page to send to a colleague.

Everything is inline (CSS, plots as SVG, the run configurations, the metric definitions): the file
opens offline and nothing is fetched. A few lines of script record each plot's rendered size in
``data-rendered`` attributes, which the headless-browser test reads back.
"""

from __future__ import annotations

import html
import json
import time
from collections.abc import Sequence
from typing import Any

from loadtest import __version__
from loadtest.measure.definitions import DEFINITIONS
from loadtest.report.build import run_configs
from loadtest.report.load import SavedRun
from loadtest.report.render import cells
from loadtest.report.tables import Table

_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; padding: 0 1em; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; margin-top: 2em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.88em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; }
th { background: #f3f3f3; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.best { font-weight: bold; background: #eaf6ea; }
p.note { color: #555; font-size: 0.85em; margin: 0.2em 0; }
figure { margin: 1em 0; } figure svg { max-width: 100%; height: auto; }
pre { background: #f7f7f7; padding: 0.6em; overflow-x: auto; font-size: 0.8em; }
dt { font-family: monospace; font-weight: bold; margin-top: 0.5em; }
"""

_SCRIPT = """
document.querySelectorAll('figure svg, img').forEach(function (el) {
  var r = el.getBoundingClientRect();
  el.setAttribute('data-rendered', Math.round(r.width) + 'x' + Math.round(r.height));
});
document.body.setAttribute('data-tables', document.querySelectorAll('table.report tbody tr').length);
"""


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def table_html(t: Table) -> str:
    body = cells(t)
    head = "".join(f"<th>{_e(c.label)}</th>" for c in t.columns)
    rows = []
    for i, (row, line) in enumerate(zip(t.rows, body)):
        tds = []
        for c, text in zip(t.columns, line):
            v = row.get(c.key)
            cls = [*(["num"] if isinstance(v, (int, float)) and not isinstance(v, bool) else []),
                   *(["best"] if (i, c.key) in t.bold else [])]
            tds.append(f"<td{' class=' + repr(' '.join(cls)) if cls else ''}>{_e(text)}</td>")
        rows.append("<tr>" + "".join(tds) + "</tr>")
    notes = "".join(f'<p class="note">{_e(n)}</p>' for n in t.notes + (["bold: best in its row"] if t.bold else []))
    return (f'<h2 id="{_e(t.name)}">{_e(t.title)}</h2>\n<table class="report" data-name="{_e(t.name)}">'
            f"<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>\n{notes}")


def _plots_html(runs: Sequence[SavedRun], by: Sequence[str], slos: dict[str, float | None] | None) -> str:
    try:
        from loadtest.report.plots import figures, svg
    except ImportError:  # pragma: no cover - plots.py itself imports nothing optional at module level
        return ""
    try:
        figs = figures(runs, by, slos)
    except Exception as exc:  # noqa: BLE001 - a missing matplotlib must not cost the tables
        return f'<h2 id="plots">Plots</h2><p class="note">no plots: {_e(exc)}</p>'
    parts = [f'<figure data-plot="{_e(name)}">{svg(fig)}</figure>' for name, fig in figs.items()]
    return '<h2 id="plots">Plots</h2>\n' + "\n".join(parts) if parts else ""


def render_html(runs: Sequence[SavedRun], tables: Sequence[Table], *, title: str = "loadtest report",
                by: Sequence[str] = ("engine", "model"), slos: dict[str, float | None] | None = None) -> str:
    configs = run_configs(runs)
    runs_html = "".join(
        f"<details><summary>{_e(c['run'])}: {_e(c['command'])}, {_e(c['engine'])}, {_e(c['model'])}</summary>"
        + (f"<p>launch: <code>{_e(c['launch_command'])}</code></p>" if c.get("launch_command") else "")
        + f"<pre>{_e(json.dumps({'config': c['config'], 'client': c['client']}, indent=2, default=str))}</pre>"
        + "</details>"
        for c in configs)
    defs = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in DEFINITIONS.items())
    generated = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><style>{_CSS}</style></head>
<body>
<h1>{_e(title)}</h1>
<p class="note">{len(runs)} runs; generated {_e(generated)} by loadtest {_e(__version__)}</p>
{"".join(table_html(t) for t in tables)}
{_plots_html(runs, by, slos)}
<h2 id="runs">Run configurations</h2>
{runs_html}
<h2 id="definitions">Definitions</h2>
<dl>{defs}</dl>
<script>{_SCRIPT}</script>
</body></html>
"""
