"""Tests for the prompt stage: the builtin set's invariants, every accepted schema, errors, sampling."""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from pathlib import Path

import pytest

from loadtest.errors import DatasetError
from loadtest.prompts.sources import BUILTIN_PATH, Prompt, load_prompts, sample_prompts


def _first_word(text: str) -> str:
    return re.sub(r"[^\w]", "", text.split()[0].lower())


def _write_jsonl(path: Path, rows: list[object]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


# --- builtin set ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def builtin() -> list[Prompt]:
    return load_prompts("builtin")


def test_builtin_has_enough_prompts_with_unique_ids(builtin: list[Prompt]) -> None:
    assert len(builtin) >= 120
    ids = [p.id for p in builtin]
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"b\d{3}", i) for i in ids)
    assert builtin[0].id == "b001"


def test_builtin_first_words_are_unique(builtin: list[Prompt]) -> None:
    """Guard for the prefix-cache rule: a shared opening word lets engines answer part of a prompt from cache."""
    counts = Counter(_first_word(p.text) for p in builtin)
    repeated = {w: n for w, n in counts.items() if n > 1}
    assert repeated == {}


def test_builtin_length_mix(builtin: list[Prompt]) -> None:
    words = [len(p.text.split()) for p in builtin]
    n = len(words)
    short = sum(w < 20 for w in words)
    medium = sum(20 <= w <= 80 for w in words)
    long_ = sum(80 < w <= 400 for w in words)
    assert short + medium + long_ == n, "no prompt may exceed 400 words"
    for bucket in (short, medium, long_):
        assert 0.25 * n <= bucket <= 0.42 * n, (short, medium, long_)


def test_builtin_file_schema_is_lima() -> None:
    lines = BUILTIN_PATH.read_text(encoding="utf-8").splitlines()
    for line in lines:
        row = json.loads(line)
        assert set(row) == {"id", "category", "conversations"}
        assert isinstance(row["conversations"], list) and len(row["conversations"]) == 1
        assert row["category"] and isinstance(row["category"], str)


def test_builtin_missing_file_says_where_it_looked(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "builtin.jsonl"
    with pytest.raises(DatasetError, match=re.escape(str(missing))):
        load_prompts("builtin", builtin_path=missing)


def test_builtin_path_override(tmp_path: Path) -> None:
    path = _write_jsonl(tmp_path / "b.jsonl", [{"id": "x1", "conversations": ["Hello?"]}])
    assert load_prompts("builtin", builtin_path=path) == [Prompt("x1", "Hello?")]


# --- schemas -------------------------------------------------------------------------------------


def test_lima_jsonl_takes_first_turn_and_stem_ids(tmp_path: Path) -> None:
    path = _write_jsonl(
        tmp_path / "mine.jsonl",
        [
            {"conversations": ["What is 2+2?", "4", "And 3+3?", "6"], "source": "x"},
            {"conversations": ["Name a colour.", "Teal."]},
        ],
    )
    assert load_prompts(str(path)) == [Prompt("mine-0", "What is 2+2?"), Prompt("mine-1", "Name a colour.")]


def test_sharegpt_json_list_takes_first_human_turn(tmp_path: Path) -> None:
    rows = [
        {
            "id": "conv-a",
            "conversations": [
                {"from": "system", "value": "You are terse."},
                {"from": "human", "value": "Why is ice slippery?"},
                {"from": "gpt", "value": "A thin water layer."},
                {"from": "human", "value": "Really?"},
            ],
        },
        {"items": [{"from": "gpt", "value": "Hi"}, {"from": "user", "value": "Plan my day."}]},
        {"conversations": [{"from": "gpt", "value": "Only the assistant speaks."}]},
    ]
    path = tmp_path / "share.json"
    path.write_text(json.dumps(rows), encoding="utf-8")
    assert load_prompts(str(path)) == [Prompt("conv-a", "Why is ice slippery?"), Prompt("share-1", "Plan my day.")]


def test_json_data_wrapper(tmp_path: Path) -> None:
    path = tmp_path / "wrapped.json"
    path.write_text(json.dumps({"data": [{"prompt": "Say hi."}, {"text": "Count to 3."}]}), encoding="utf-8")
    assert [p.text for p in load_prompts(str(path))] == ["Say hi.", "Count to 3."]


def test_messages_jsonl_takes_first_user_role(tmp_path: Path) -> None:
    path = _write_jsonl(
        tmp_path / "chat.jsonl",
        [
            {
                "messages": [
                    {"role": "system", "content": "Be brief."},
                    {"role": "user", "content": "Capital of Peru?"},
                    {"role": "assistant", "content": "Lima."},
                    {"role": "user", "content": "And Chile?"},
                ]
            },
            {"messages": [{"role": "user", "content": [{"type": "text", "text": "Describe this."}]}]},
            {"messages": [{"role": "user", "content": "   "}]},
            "not an object",
        ],
    )
    assert load_prompts(str(path)) == [Prompt("chat-0", "Capital of Peru?"), Prompt("chat-1", "Describe this.")]


def test_prompt_parquet(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    path = tmp_path / "p.parquet"
    pq.write_table(pa.table({"id": ["q1", "q2"], "prompt": ["Tell a riddle.", "Define pi."]}), path)
    assert load_prompts(str(path)) == [Prompt("q1", "Tell a riddle."), Prompt("q2", "Define pi.")]


def test_lima_schema_parquet_nested_lists(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    path = tmp_path / "lima_like.parquet"
    pq.write_table(pa.table({"conversations": [["First?", "Yes."], ["Second?", "No."]]}), path)
    assert [p.text for p in load_prompts(str(path))] == ["First?", "Second?"]


def test_duplicate_row_ids_are_made_unique(tmp_path: Path) -> None:
    path = _write_jsonl(tmp_path / "d.jsonl", [{"id": "same", "prompt": "A"}, {"id": "same", "prompt": "B"}])
    assert [p.id for p in load_prompts(str(path))] == ["same", "same-1"]


# --- errors --------------------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="not found"):
        load_prompts(str(tmp_path / "absent.jsonl"))


@pytest.mark.parametrize("name,text,match", [
    ("bad.jsonl", '{"prompt": "ok"}\n\n{"prompt": broken}\n', r"bad\.jsonl: line 3: invalid JSON"),
    ("bad.json", '[{"prompt": "ok"},\n  oops]', "invalid JSON at line 2"),
    ("obj.json", '{"rows": []}', "expected a JSON list"),
    ("prompts.csv", "prompt\nhello\n", r"unsupported prompt file type '\.csv'"),
])
def test_bad_prompt_files_name_what_is_wrong(tmp_path: Path, name: str, text: str, match: str) -> None:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    with pytest.raises(DatasetError, match=match):
        load_prompts(str(path))


def test_no_usable_rows(tmp_path: Path) -> None:
    rows = [{"answer": "x"}, {"messages": [{"role": "assistant", "content": "y"}]}]
    path = _write_jsonl(tmp_path / "empty.jsonl", rows)
    with pytest.raises(DatasetError, match="no usable prompts in 2 rows"):
        load_prompts(str(path))


def test_errors_are_one_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text("{\n", encoding="utf-8")
    with pytest.raises(DatasetError) as info:
        load_prompts(str(path))
    assert "\n" not in str(info.value)


def test_lima_offline_is_a_dataset_error_mentioning_gated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    pytest.importorskip("datasets")
    # An empty cache, so a developer's cached copy of LIMA cannot make this pass or fail by accident.
    for var in ("HF_HOME", "HF_DATASETS_CACHE", "HF_HUB_CACHE"):
        monkeypatch.setenv(var, str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    # Both libraries read these at import time; if another test imported them first, patch the constants too.
    if "huggingface_hub" in sys.modules:
        monkeypatch.setattr(sys.modules["huggingface_hub"].constants, "HF_HUB_OFFLINE", True)
    if "datasets" in sys.modules:
        config = sys.modules["datasets"].config
        monkeypatch.setattr(config, "HF_HUB_OFFLINE", True)
        monkeypatch.setattr(config, "HF_DATASETS_CACHE", tmp_path / "hf" / "datasets")
    with pytest.raises(DatasetError) as info:
        load_prompts("lima")
    message = str(info.value)
    assert "gated" in message
    assert "--dataset builtin" in message
    assert "HF_TOKEN" in message
    assert "\n" not in message


# --- sampling ------------------------------------------------------------------------------------


def _pool(k: int) -> list[Prompt]:
    return [Prompt(f"p{i}", f"text {i}") for i in range(k)]


def test_sampling_is_deterministic_per_seed() -> None:
    pool = _pool(50)
    assert sample_prompts(pool, 30, seed=7) == sample_prompts(pool, 30, seed=7)
    assert sample_prompts(pool, 30, seed=7) != sample_prompts(pool, 30, seed=8)


def test_sampling_without_repeats_when_n_fits() -> None:
    pool = _pool(40)
    picked = sample_prompts(pool, 40, seed=3)
    assert sorted(p.id for p in picked) == sorted(p.id for p in pool)
    few = sample_prompts(pool, 25, seed=3)
    assert len({p.id for p in few}) == 25
    assert few == picked[:25], "a smaller n is a prefix of a larger one"


def test_sampling_uses_each_prompt_once_per_pass() -> None:
    pool = _pool(10)
    picked = sample_prompts(pool, 35, seed=11)
    assert len(picked) == 35
    passes = [picked[i : i + 10] for i in range(0, 35, 10)]
    for full in passes[:3]:
        assert sorted(p.id for p in full) == sorted(p.id for p in pool)
    assert len({p.id for p in passes[3]}) == 5
    assert passes[0] != passes[1], "passes are shuffled independently"


def test_sampling_edge_cases() -> None:
    assert sample_prompts(_pool(3), 0, seed=1) == []
    with pytest.raises(ValueError):
        sample_prompts(_pool(3), -1, seed=1)
    with pytest.raises(DatasetError):
        sample_prompts([], 5, seed=1)
