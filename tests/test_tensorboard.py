"""logger=tensorboard (and `taskzoo run --tensorboard`): event files beside metrics.jsonl that
hold its scalars, the run's pictures and its config, read back with TensorBoard's own reader."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import Stop, stop_at

import taskzoo
from taskzoo.errors import ConfigError, UsageError

TINY = dict(dataset="tiny", epochs=1, batch_size=16, eval_every=7, log_every=3, embed_dim=16,
            hidden_dim=16, device="cpu", progress=False)


def _events(run_dir: Path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    acc.Reload()
    return acc


def _records(run_dir: Path) -> list[dict]:
    lines = (run_dir / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def _assert_scalars_are_the_log(run_dir: Path) -> set[str]:
    """Every figure of every metrics.jsonl record, and nothing else, as a scalar at its step;
    returns the tags."""
    acc = _events(run_dir)
    want: dict[str, list[tuple[int, float]]] = {}
    for rec in _records(run_dir):
        for key, value in rec.items():
            if key not in ("step", "epoch"):
                want.setdefault(key, []).append((rec["step"], value))
    assert sorted(acc.Tags()["scalars"]) == sorted(want)
    for tag, points in want.items():
        got = [(e.step, e.value) for e in acc.Scalars(tag)]
        assert [s for s, _ in got] == [s for s, _ in points], tag
        assert [v for _, v in got] == pytest.approx([v for _, v in points], rel=1e-6), tag
    return set(want)


def _text(acc, tag: str) -> str:
    return acc.Tensors(f"{tag}/text_summary")[-1].tensor_proto.string_val[0].decode()


def _png_size(png: bytes) -> tuple[int, int]:
    from PIL import Image

    with Image.open(io.BytesIO(png)) as img:
        return img.size


@pytest.fixture(scope="module")
def tb_run(tmp_path_factory):
    pytest.importorskip("tensorboard")
    out = tmp_path_factory.mktemp("tb") / "run"
    result = taskzoo.run("sentiment", out=out, logger="tensorboard", **TINY)
    return out, result


def test_events_hold_the_log_the_pictures_and_the_config(tb_run):
    out, result = tb_run
    events = list(out.glob("events.out.tfevents.*"))
    assert len(events) == 1  # beside metrics.jsonl: the run folder is one TensorBoard run
    assert {"train/loss", "train/lr", "dev/accuracy"} <= _assert_scalars_are_the_log(out)
    acc = _events(out)
    [image] = acc.Images("pictures/training_curves")
    assert image.step == result.metrics["train/steps"]
    assert (image.width, image.height) == _png_size((out / "training_curves.png").read_bytes())
    assert image.encoded_image_string.startswith(b"\x89PNG")
    config = _text(acc, "config")
    saved = json.loads((out / "config.json").read_text())
    assert saved["logger"] == "tensorboard"
    for key in ("embed_dim", "lr", "logger", "_task"):
        assert f"| {key} | {json.dumps(saved[key])} |" in config, key
    metrics = _text(acc, "metrics")
    assert f"| dev/accuracy | {json.dumps(result.metrics['dev/accuracy'])} |" in metrics


def test_a_resumed_run_holds_each_record_once(tmp_path):
    run = tmp_path / "run"
    with pytest.raises(Stop):  # after the checkpoint of step 7 and the records of steps 8..9
        taskzoo.run("sentiment", out=run, logger="tensorboard", callbacks=[stop_at(12)], **TINY)
    assert list(run.glob("events.out.tfevents.*"))  # the writer was closed with the failure
    cut = _events(run)
    assert max(e.step for e in cut.Scalars("train/loss")) > 7
    taskzoo.run("sentiment", out=run, resume=True, logger="tensorboard", **TINY)
    assert len(list(run.glob("events.out.tfevents.*"))) == 1
    _assert_scalars_are_the_log(run)


def test_an_old_run_without_the_field_resumes_with_tensorboard(tmp_path):
    """config.json of runs before `logger` lacks it; the logger is no part of the recipe, and
    events begun on resume hold the records written before it too."""
    run = tmp_path / "run"
    with pytest.raises(Stop):
        taskzoo.run("sentiment", out=run, callbacks=[stop_at(10)], **TINY)
    assert not list(run.glob("events.out.tfevents.*"))
    saved = json.loads((run / "config.json").read_text())
    del saved["logger"]
    (run / "config.json").write_text(json.dumps(saved))
    taskzoo.run("sentiment", out=run, resume=True, logger="tensorboard", **TINY)
    assert min(e.step for e in _events(run).Scalars("train/loss")) == 3  # before the resume
    _assert_scalars_are_the_log(run)


def test_rl_and_an_untrained_task_write_events(tmp_path, monkeypatch):
    pytest.importorskip("tensorboard")
    rl = dict(progress=False, sweeps=1, eval_episodes=5, val_episodes=5, logger="tensorboard")
    taskzoo.run("frozenlake", out=tmp_path / "vi", **rl)
    assert {"train/loss", "val/optimality"} <= _assert_scalars_are_the_log(tmp_path / "vi")
    assert _events(tmp_path / "vi").Images("pictures/learning_curve")
    # a task whose batches() is None trains nothing: config, metrics and its report picture
    task_cls = taskzoo.api.resolve_task("frozenlake")
    monkeypatch.setattr(task_cls, "batches", lambda self, data, model: None)
    res = taskzoo.run("frozenlake", out=tmp_path / "none", **rl)
    assert res.metrics["train/steps"] == 0
    acc = _events(tmp_path / "none")
    assert acc.Tags()["scalars"] == []
    assert [i.step for i in acc.Images("pictures/learning_curve")] == [0]
    assert "| _task | \"frozenlake\" |" in _text(acc, "config")


def test_the_default_logger_writes_no_events_and_overwrite_removes_old_ones(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"_task": "sentiment"}))
    (run / "events.out.tfevents.1700000000.host.1.0").write_bytes(b"an old run's events")
    result = taskzoo.run("sentiment", out=run, overwrite=True, **TINY)
    assert result.config.logger == "jsonl"
    assert not list(run.glob("events.out.tfevents.*"))
    assert (run / "metrics.jsonl").stat().st_size > 0


def test_an_unknown_logger_names_the_closest_one(tmp_path):
    with pytest.raises(ConfigError, match=r"logger='tensorbord'.*Did you mean 'tensorboard'"):
        taskzoo.run("sentiment", out=tmp_path / "run", logger="tensorbord", **TINY)
    assert not (tmp_path / "run").exists()


def test_a_missing_tensorboard_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails
    with pytest.raises(UsageError, match=r'pip install -e "\.\[tensorboard\]"'):
        taskzoo.run("sentiment", out=tmp_path / "run", logger="tensorboard", **TINY)
    assert not (tmp_path / "run").exists()  # said before the folder or the data


def test_the_tensorboard_flag_is_logger_tensorboard(monkeypatch, capsys):
    from taskzoo.cli import main

    seen = {}

    def fake_run(task, **kwargs):
        seen.update(kwargs)
        raise Stop

    monkeypatch.setattr(taskzoo.api, "run", fake_run)
    with pytest.raises(Stop):
        main(["run", "sentiment", "epochs=1", "--tensorboard", "--quiet"])
    assert seen["logger"] == "tensorboard" and seen["epochs"] == "1"
    assert main(["run", "sentiment", "logger=jsonl", "--tensorboard"]) == 2
    assert "--tensorboard and logger=jsonl" in capsys.readouterr().err


def test_the_engine_imports_tensorboard_only_when_asked():
    code = ("import sys, taskzoo.api, taskzoo.train.trainer, taskzoo.train.tensorboard; "
            "assert 'tensorboard' not in sys.modules, 'imported'; "
            "assert 'torch.utils.tensorboard' not in sys.modules, 'imported'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
