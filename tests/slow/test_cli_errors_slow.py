"""The slowest test of tests/integration/test_cli_errors.py (five bad arguments, each a CLI subprocess),
moved whole so that make test-fast stays under 2 minutes."""

from __future__ import annotations

import pytest

from test_cli_errors import error_line, run


@pytest.mark.parametrize("args,needle", [
    (["single", "--endpoint", "ftp://x"], "not an http(s) URL"),
    (["single", "--model", "m"], "--endpoint is required"),
    (["single", "--endpoint", "http://127.0.0.1:1", "--dataset", "/no/such.jsonl"], "no/such.jsonl"),
    (["single", "--endpoint", "http://127.0.0.1:1", "--extra-body", "{bad"], "--extra-body"),
    (["single", "--endpoint", "http://127.0.0.1:1", "--tokenizer", "/no/dir/tok"], "--tokenizer"),
])
def test_bad_arguments_give_one_line(tmp_path, args, needle):
    proc = run(args, tmp_path)
    assert proc.returncode == 2 and needle in error_line(proc)
