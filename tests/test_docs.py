from pathlib import Path

from loadtest.measure.definitions import DEFINITIONS, markdown

DOC = Path(__file__).resolve().parents[1] / "docs" / "metrics.md"


def test_metrics_doc_holds_every_definition_verbatim():
    text = DOC.read_text()
    block = text.split("-->\n", 1)[1].split("<!-- definitions:end -->")[0]
    assert block == markdown(), "regenerate the block with: python -m loadtest.definitions"
    assert all(f"**`{name}`**" in text for name in DEFINITIONS)
