"""What `run(out=...)` / `--out` refuses (issue 28, cases 3, 9 and 17): an empty name, a path
through a file, a user's folder, an existing run without --resume or --overwrite; and what
--resume and --overwrite tidy. The refusals come before any data or training."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from conftest import Stop, stop_at

import taskzoo
from taskzoo.errors import CheckpointError, UsageError
from taskzoo.files import atomic_path

TINY = dict(dataset="tiny", epochs=1, batch_size=16, eval_every=7, embed_dim=16, hidden_dim=16,
            device="cpu", progress=False)


def _hashes(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()}


@pytest.fixture
def no_data(monkeypatch):
    """Any data or model building fails the test: the refusals must come first."""
    from taskzoo.tasks.sentiment.task import SentimentTask

    def boom(*a, **k):
        raise AssertionError("data was built before --out was checked")

    monkeypatch.setattr(SentimentTask, "build_data", boom)


@pytest.mark.parametrize("out", ["", "   "])
def test_an_empty_out_is_a_usage_error(out, tmp_path, monkeypatch, no_data):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UsageError, match="--out is empty"):
        taskzoo.run("sentiment", out=out, **TINY)
    assert list(tmp_path.iterdir()) == []


def test_a_users_folder_is_refused_and_left_as_it_was(tmp_path, no_data):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "config.json").write_text('{"my": "settings"}')
    (mine / "metrics.json").write_text("[1, 2, 3]")
    (mine / "best.safetensors").write_bytes(b"my weights")
    before = _hashes(mine)
    with pytest.raises(UsageError) as err:
        taskzoo.run("sentiment", out=mine, **TINY)
    msg = str(err.value)
    assert "\n" not in msg and str(mine) in msg and "not a taskzoo run" in msg
    assert "--overwrite" in msg and "new or empty --out" in msg
    assert _hashes(mine) == before
    with pytest.raises(CheckpointError, match="nothing to resume"):  # nor is it resumed
        taskzoo.run("sentiment", out=mine, resume=True, **TINY)
    assert _hashes(mine) == before


@pytest.mark.parametrize("content", ["{not json", "[1]", '{"_task": ""}', '{"_task": 3}'])
def test_a_config_json_that_names_no_task_is_not_a_run(content, tmp_path, no_data):
    folder = tmp_path / "f"
    folder.mkdir()
    (folder / "config.json").write_text(content)
    assert taskzoo.api.run_task_name(folder) is None
    with pytest.raises(UsageError, match="not a taskzoo run"):
        taskzoo.run("sentiment", out=folder, **TINY)
    (folder / "last.ckpt").write_bytes(b"x")  # --resume: one line naming config.json
    with pytest.raises(CheckpointError, match=r"config.json is missing, unreadable or names no task"):
        taskzoo.run("sentiment", out=folder, resume=True, **TINY)


def test_an_existing_run_needs_resume_or_overwrite(tmp_path, no_data):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"_task": "pos"}))
    with pytest.raises(UsageError) as err:
        taskzoo.run("sentiment", out=run, **TINY)
    msg = str(err.value)
    assert f"--out {run} already holds a 'pos' run" in msg and "\n" not in msg
    assert "--resume" in msg and "--overwrite" in msg and "new --out" in msg
    with pytest.raises(UsageError, match="choose one"):
        taskzoo.run("sentiment", out=run, resume=True, overwrite=True, **TINY)


@pytest.mark.parametrize("where", ["file", "inside_file"])
def test_out_through_a_file_is_refused(where, tmp_path, no_data):
    f = tmp_path / "notes.txt"
    f.write_text("mine")
    out = f if where == "file" else f / "sub" / "run"
    with pytest.raises(UsageError) as err:
        taskzoo.run("sentiment", out=out, **TINY)
    msg = str(err.value)
    assert "\n" not in msg and str(out) in msg and f"{f} is a file" in msg
    assert f.read_text() == "mine"


def test_an_empty_folder_is_fine_and_overwrite_starts_afresh(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    first = taskzoo.run("sentiment", out=run, **TINY)
    assert (run / "metrics.json").is_file() and first.run_dir == run
    with pytest.raises(UsageError, match="already holds a 'sentiment' run"):
        taskzoo.run("sentiment", out=run, **TINY)
    (run / "notes.txt").write_text("kept")  # a user's own file beside the run
    with pytest.raises(Stop):  # the new run stops before its first checkpoint
        taskzoo.run("sentiment", out=run, overwrite=True, callbacks=[stop_at(3)], **TINY)
    assert "removed" in capsys.readouterr().err
    # nothing of the old run is left to be resumed or delivered as the new one's
    for name in ("last.ckpt", "best.safetensors", "metrics.json"):
        assert not (run / name).exists(), name
    assert (run / "notes.txt").read_text() == "kept"
    again = taskzoo.run("sentiment", out=run, overwrite=True, **TINY)
    assert again.metrics == json.loads((run / "metrics.json").read_text())


def test_the_stale_temp_pattern_is_what_atomic_writes_create(tmp_path):
    from taskzoo.api import ATOMIC_TEMP_NAME

    names = []
    for target in ("last.ckpt", "best.safetensors", "metrics.json", "captions_test.tsv"):
        with atomic_path(tmp_path / target) as tmp:
            names.append(tmp.name)
            tmp.write_bytes(b"")
    assert all(ATOMIC_TEMP_NAME.fullmatch(n) for n in names), names
    for other in (".last.ckpt.tmp", "last.ckpt.abcdefgh.tmp", ".x.ABCDEFGH.tmp", "notes.tmp",
                  ".last.ckpt.abcdefgh.tmp.bak", ".x.tmp-123-abcd"):
        assert not ATOMIC_TEMP_NAME.fullmatch(other), other


def test_resume_removes_the_stale_temp_files_of_a_killed_write(tmp_path, capsys):
    run = tmp_path / "run"
    with pytest.raises(Stop):
        taskzoo.run("sentiment", out=run, callbacks=[stop_at(9)], **TINY)
    assert (run / "last.ckpt").is_file()
    # what kill -9 during a checkpoint write leaves: atomic_path's temp beside last.ckpt
    # (its name taken from a write elsewhere, which completes)
    with atomic_path(tmp_path / "last.ckpt") as tmp:
        stale = tmp.name
    (run / stale).write_bytes(b"half a checkpoint")
    (run / ".best.safetensors.k3j_9x0a.tmp").write_bytes(b"half the weights")
    (run / "my.tmp").write_text("a user's file")  # not a name taskzoo's writes create
    capsys.readouterr()
    taskzoo.run("sentiment", out=run, resume=True, **TINY)
    err = capsys.readouterr().err
    assert f"removed 2 stale temporary file(s) of an interrupted write in {run}" in err
    assert stale in err
    assert not list(run.glob(".*.tmp"))
    assert (run / "my.tmp").read_text() == "a user's file"
