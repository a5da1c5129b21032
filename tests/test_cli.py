"""The `taskzoo` command through subprocess, as a user types it."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

CLI = [sys.executable, "-m", "taskzoo.cli"]


def _run(args, env, timeout=120, **kw):
    return subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=timeout, **kw)


def _no_traceback(proc):
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout, proc.stderr


def test_list(cli_env):
    proc = _run(["list"], cli_env)
    assert proc.returncode == 0
    assert "sentiment" in proc.stdout and "pos" in proc.stdout
    assert "bilstm_tagger" in proc.stdout
    for model in ("lstm", "gru", "bilstm", "bigru", "textcnn"):
        assert model in proc.stdout


def test_unknown_task_suggests_and_exits_2(cli_env):
    proc = _run(["run", "sentimnet"], cli_env)
    assert proc.returncode == 2
    assert "Did you mean 'sentiment'?" in proc.stderr
    _no_traceback(proc)


def test_bad_override_names_key_and_type(cli_env):
    proc = _run(["run", "sentiment", "lr=abc"], cli_env)
    assert proc.returncode == 2
    assert "lr='abc'" in proc.stderr and "expected float" in proc.stderr
    _no_traceback(proc)
    proc = _run(["run", "sentiment", "epoch=3"], cli_env)
    assert proc.returncode == 2 and "Did you mean 'epochs'?" in proc.stderr
    proc = _run(["run", "sentiment", "dataset=sst3"], cli_env)
    assert proc.returncode == 2 and "Did you mean 'sst2'?" in proc.stderr
    proc = _run(["run", "sentiment", "--model", "bilstn"], cli_env)
    assert proc.returncode == 2 and "Did you mean 'bilstm'?" in proc.stderr
    proc = _run(["run", "sentiment", "--bogus"], cli_env)
    assert proc.returncode == 2 and "unrecognized arguments: --bogus" in proc.stderr
    _no_traceback(proc)


def test_help_lists_the_task_config(cli_env):
    proc = _run(["run", "sentiment", "--help"], cli_env)
    assert proc.returncode == 0
    assert "--resume" in proc.stdout and "epochs" in proc.stdout and "dataset=tiny also sets" in proc.stdout
    for sub in ("list", "predict"):
        assert _run([sub, "--help"], cli_env).returncode == 0


def test_offline_without_data_is_a_clear_error(cli_env, tmp_path):
    env = {**cli_env, "TASKZOO_OFFLINE": "1"}
    proc = _run(["run", "sentiment", "--out", str(tmp_path / "r")], env)
    assert proc.returncode == 1
    assert "TASKZOO_OFFLINE" in proc.stderr and "train.tsv" in proc.stderr
    _no_traceback(proc)


@pytest.mark.timeout(240)
def test_run_then_predict(cli_env, tmp_path):
    out = tmp_path / "run"
    proc = _run(["run", "sentiment", "dataset=tiny", "--out", str(out), "--device", "cpu",
                 "epochs=8", "--quiet", "--json"], cli_env)
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads(proc.stdout)
    assert metrics["dev/accuracy"] >= 0.9
    assert json.loads((out / "metrics.json").read_text()) == metrics
    proc = _run(["predict", "sentiment", "--from", str(out), "the cast is a joy to watch .",
                 "the ending is a painful disappointment .", "--json"], cli_env)
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["label"] for r in rows] == ["positive", "negative"]
    proc = _run(["predict", "sentiment", "--from", str(out), "-"], cli_env,
                input="the film is superb .\n\n")
    assert proc.returncode == 0 and proc.stdout.startswith("positive\t")
    proc = _run(["predict", "sentiment", "--from", str(out), "   "], cli_env)
    assert proc.returncode == 2 and "empty" in proc.stderr
    _no_traceback(proc)
    proc = _run(["predict", "sentiment", "--from", str(tmp_path / "nope"), "hi"], cli_env)
    assert proc.returncode == 1 and "not a finished run directory" in proc.stderr
    _no_traceback(proc)


@pytest.mark.timeout(240)
def test_run_then_predict_pos(cli_env, tmp_path):
    out = tmp_path / "pos"
    proc = _run(["run", "pos", "dataset=tiny", "epochs=6", "--out", str(out), "--device", "cpu",
                 "--quiet"], cli_env)
    assert proc.returncode == 0, proc.stderr
    assert "test/upos_accuracy" in proc.stdout and (out / "tags_test.txt").is_file()
    proc = _run(["predict", "pos", "--from", str(out), "The old man the boats.",
                 "She is reading a book."], cli_env)
    assert proc.returncode == 0, proc.stderr
    first, second = proc.stdout.splitlines()
    assert [p.rsplit("/", 1)[0] for p in first.split()] == ["The", "old", "man", "the", "boats", "."]
    assert first.startswith("The/DET ") and first.endswith(" ./PUNCT")
    assert second.split()[:2] == ["She/PRON", "is/AUX"]
    proc = _run(["predict", "pos", "--from", str(out), "Anna visited Paris.", "--json"], cli_env)
    row = json.loads(proc.stdout)
    assert row["input"] == "Anna visited Paris." and row["tokens"] == ["Anna", "visited", "Paris", "."]
    assert len(row["tags"]) == len(row["scores"]) == 4 and row["tags"][-1] == "PUNCT"
    proc = _run(["predict", "sentiment", "--from", str(out), "hi"], cli_env)
    assert proc.returncode == 2 and "holds a 'pos' run" in proc.stderr
    _no_traceback(proc)
