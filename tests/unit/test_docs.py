import os
import subprocess
import sys
from pathlib import Path

from loadtest.measure.definitions import DEFINITIONS, markdown

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "metrics.md"
MKDOCS_YML = REPO / "mkdocs.yml"
README = REPO / "README.md"


def test_metrics_doc_holds_every_definition_verbatim():
    text = DOC.read_text()
    block = text.split("-->\n", 1)[1].split("<!-- definitions:end -->")[0]
    assert block == markdown(), "regenerate the block with: python docs/generate.py"
    assert all(f"**`{name}`**" in text for name in DEFINITIONS)


def test_generated_docs_are_fresh():
    """docs/cli.md (every command and option, from the argparse tree) and the metrics block are
    generated; a flag added without regenerating them fails here."""
    done = subprocess.run([sys.executable, str(REPO / "docs" / "generate.py"), "--check"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    cli = (REPO / "docs" / "cli.md").read_text()
    from loadtest.cli.main import build_parser

    flags = {s for a in build_parser()._subparsers._group_actions[0].choices["throughput"]._actions
             for s in a.option_strings if s.startswith("--") and s != "--help"}
    assert flags and all(f"`{flag}" in cli for flag in flags)


def _nav_pages(nav) -> set[str]:
    """Every page a mkdocs nav names, however deeply nested."""
    pages: set[str] = set()
    for item in nav:
        value = item
        if isinstance(item, dict):
            (value,) = item.values()
        if isinstance(value, list):
            pages |= _nav_pages(value)
        elif isinstance(value, str) and value.endswith(".md"):
            pages.add(value)
    return pages


def test_site_builds_in_strict_mode_with_every_page_in_the_nav(tmp_path):
    from mkdocs.config import load_config

    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(MKDOCS_YML),
         "-d", str(tmp_path / "site")],
        capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr

    config = load_config(str(MKDOCS_YML))
    docs_dir = Path(config["docs_dir"])
    nav = _nav_pages(config["nav"])
    pages = {p.relative_to(docs_dir).as_posix() for p in docs_dir.rglob("*.md")}
    excluded = {p for p in pages if config["exclude_docs"] and config["exclude_docs"].match_file(p)}
    assert pages - excluded - nav == set(), "pages missing from mkdocs.yml's nav"
    assert nav <= pages - excluded, "nav names pages that are not there (or are excluded)"


def test_readme_is_a_first_page():
    text = README.read_text()
    assert len(text.splitlines()) <= 200, "README.md is the user's first page: the rest goes to docs/"
    assert "make demo" in text and "make test" in text
