"""`taskzoo bench`: rows for the chosen tasks, the quick warning, JSON/Markdown/CSV, errors."""

from __future__ import annotations

import csv
import io
import json

import pytest

from taskzoo.bench import format_table, to_markdown
from taskzoo.cli import main

pytestmark = pytest.mark.timeout(300)


def test_quick_bench_writes_a_row_per_task_in_every_format(tmp_path, capsys):
    files = {ext: tmp_path / f"out.{ext}" for ext in ("json", "md", "csv")}
    assert main(["bench", "taxi", "sentiment", "--quick", "--json", str(files["json"]),
                 "--md", str(files["md"]), "--csv", str(files["csv"])]) == 0
    out = capsys.readouterr().out
    assert "NOT benchmark results" in out and "cores" in out.splitlines()[0]
    assert all(len(line) <= 100 for line in out.splitlines()[1:])
    data = json.loads(files["json"].read_text())
    assert data["quick"] is True and [r["task"] for r in data["rows"]] == ["taxi", "sentiment"]
    for row in data["rows"]:
        assert row["quality"] is not None and row["train_s"] > 0 and row["train_rate"] > 0
        assert 0 < row["p50_ms"] <= row["p95_ms"] and row["infer_rate"] > 0
        assert row["peak_mb"] > 50 and row["params"] > 0
    taxi, sentiment = data["rows"]
    assert taxi["metric"] == "eval/expected_return" and taxi["quality"] > 7.0  # solved exactly
    assert sentiment["metric"] == "dev/accuracy" and sentiment["reference"] is not None
    assert sentiment["gap"] == pytest.approx(sentiment["quality"] - sentiment["reference"])
    md = files["md"].read_text().splitlines()
    assert md[2].startswith("| task | quality |") and len(md) == 6
    assert [r["task"] for r in csv.DictReader(io.StringIO(files["csv"].read_text()))] == \
        ["taxi", "sentiment"]


def test_unknown_task_fails_before_any_work(capsys):
    assert main(["bench", "sentimnet", "--quick"]) == 2
    assert "Did you mean 'sentiment'" in capsys.readouterr().err


def test_a_failed_task_is_a_row_not_a_crash():
    rows = [{"task": "pos", "error": "RuntimeError: boom", "quick": False}]
    assert "pos         FAILED: RuntimeError: boom" in format_table(rows)
    assert "FAILED: RuntimeError: boom" in to_markdown(rows)
