"""The floors of the package (docs/architecture.md): imports go one way, down.

    entry (__main__) -> cli -> series -> scaleout -> compare -> {run, report} -> client
        -> {prompts, scheduler, measure, judge, launch, sim, servermetrics} -> stats -> transport -> base

Every module is parsed, and every import counts: at the top, inside functions, and under
``TYPE_CHECKING``. An import may go down any number of floors, never up, and never sideways
between two packages of one floor. Within a package, modules may import each other, but no import
circle may form anywhere. No exceptions list: a module that needs one is in the wrong room.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "loadtest"
FLOORS: list[set[str]] = [
    {"cli"},
    {"series"},
    {"scaleout"},
    {"compare"},  # reads saved runs through report.load; report --slice uses stats, below
    {"run", "report"},
    {"client"},
    {"prompts", "scheduler", "measure", "judge", "launch", "sim", "servermetrics"},
    {"stats"},  # distributions and tests: plain math that measure (repeats), report and compare share
    {"transport"},
    {"base"},
]
ENTRY = -1  # a package's __main__ (python -m ...) is an entry point: above the cli
BASE_MODULES = {"__init__", "_accel", "_speedups", "errors", "config", "redact", "tokens", "eventloop", "timer"}


def room(module: str) -> str:
    """The room (package or 'base') a dotted module name of loadtest lives in."""
    parts = module.split(".")
    if len(parts) == 1:
        return "base"
    top = parts[1]
    return "base" if top in BASE_MODULES else top


def floor(module: str) -> int:
    if module.endswith(".__main__"):
        return ENTRY
    r = room(module)
    return next(i for i, rooms in enumerate(FLOORS) if r in rooms)


def modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = modules()


def imports(module: str, path: Path) -> set[str]:
    """The loadtest modules ``module`` imports, wherever the import statement stands."""
    is_pkg = path.name == "__init__.py"
    package = module if is_pkg else module.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(base) + (f".{node.module}" if node.module else "")
            else:
                target = node.module or ""
            if target != "loadtest" and not target.startswith("loadtest."):
                continue
            for alias in node.names:  # `from loadtest.run import live` imports the module run.live
                sub = f"{target}.{alias.name}"
                found.add(sub if sub in MODULES else target)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name == "loadtest" or a.name.startswith("loadtest."))
    found.discard(module)
    return found


GRAPH = {m: imports(m, p) for m, p in MODULES.items()}


def test_every_module_has_a_floor() -> None:
    rooms = {room(m) for m in MODULES if not m.endswith(".__main__")}
    known = set().union(*FLOORS)
    assert rooms <= known, f"modules outside every floor: {sorted(rooms - known)}"
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(top) <= 10, f"loadtest/ has {len(top)} top-level modules (at most 10): {top}"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_go_down_never_up_or_sideways(module: str) -> None:
    mine = floor(module)
    bad = []
    for target in sorted(GRAPH[module]):
        theirs = floor(target)
        if room(target) == room(module) and not target.endswith(".__main__"):
            continue  # within one package (or within base)
        if theirs <= mine:
            direction = "up" if theirs < mine else "sideways"
            bad.append(f"{target} ({direction}: {room(module)} may not import {room(target)})")
    assert not bad, f"{module} imports " + "; ".join(bad)


def test_no_import_circles() -> None:
    """Depth-first search over the whole graph, packages' __init__ included."""
    state: dict[str, int] = defaultdict(int)  # 0 new, 1 on the stack, 2 done
    stack: list[str] = []
    circles: list[list[str]] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for t in sorted(GRAPH.get(m, ())):
            if t not in GRAPH:
                continue
            if state[t] == 1:
                circles.append(stack[stack.index(t):] + [t])
            elif state[t] == 0:
                visit(t)
        stack.pop()
        state[m] = 2

    for m in sorted(GRAPH):
        if state[m] == 0:
            visit(m)
    assert not circles, "import circles: " + "; ".join(" -> ".join(c) for c in circles)


def test_the_floor_rule_catches_an_upward_import(tmp_path: Path) -> None:
    """The rule itself: measure importing run is up, measure importing judge is sideways, measure
    importing transport is down."""
    assert floor("loadtest.measure.record") > floor("loadtest.run.runner")
    assert floor("loadtest.measure.record") == floor("loadtest.judge.slo") and room("loadtest.judge.slo") == "judge"
    assert floor("loadtest.transport.base") > floor("loadtest.measure.record")
    assert floor("loadtest.config") == len(FLOORS) - 1 and floor("loadtest.sim.__main__") == ENTRY
    path = tmp_path / "x.py"
    path.write_text("def f():\n    from loadtest.run import runner\nif False:\n    import loadtest.judge.slo\n")
    assert imports("loadtest.measure.x", path) == {"loadtest.run.runner", "loadtest.judge.slo"}
