"""The slow case of tests/integration/test_faults_errors2.py: report and compare of a summary with
each field in turn of a hostile type (hundreds of reports, ~50 s)."""

from __future__ import annotations

import json

import pytest

from loadtest.cli.main import main
from test_faults_errors2 import saved_run  # noqa: F401 (the fixture)

pytestmark = pytest.mark.timeout(300)


def test_report_and_compare_survive_hostile_field_types(saved_run, tmp_path, capsys):
    """null, a string, a list or an object in place of each metric and count: never a traceback."""
    base = json.loads((saved_run / "summary.json").read_text())
    other = tmp_path / "other"
    other.mkdir()
    (other / "requests.jsonl").write_bytes((saved_run / "requests.jsonl").read_bytes())
    for section in ("metrics", "counts", "run", "config"):
        for name in list(base[section])[:12]:
            for value in (None, "x", [1], {"a": 1}):
                spoilt = json.loads(json.dumps(base))
                spoilt[section][name] = value
                (other / "summary.json").write_text(json.dumps(spoilt))
                for argv in (["report", str(other)], ["compare", str(saved_run), str(other)]):
                    code = main(argv)
                    err = capsys.readouterr().err
                    assert code in (0, 2) and "Traceback" not in err and "internal error" not in err, (
                        section, name, value, argv[0], err)
