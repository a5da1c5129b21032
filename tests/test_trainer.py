"""Trainer: exact resume, early stopping, schedules, checkpoints."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import taskzoo
from taskzoo.config import TrainConfig
from taskzoo.errors import CheckpointError
from taskzoo.trainer import Callback, lr_lambda

TINY = dict(dataset="tiny", epochs=3, batch_size=16, eval_every=7, log_every=5,
            embed_dim=16, hidden_dim=16, device="cpu")


class _Killed(Exception):
    pass


class KillAt(Callback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, trainer, state) -> None:
        if state.step == self.step:
            raise _Killed


def _records(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def _assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = load_file(str(a)), load_file(str(b))
    assert wa.keys() == wb.keys()
    for key in wa:
        assert torch.equal(wa[key], wb[key]), key


def test_resume_after_interruption_is_exact(tmp_path):
    full = taskzoo.run("sentiment", out=tmp_path / "full", progress=False, **TINY)
    with pytest.raises(_Killed):
        # step 33 is mid-epoch and between checkpoints (taken every 7 steps)
        taskzoo.run("sentiment", out=tmp_path / "cut", progress=False, callbacks=[KillAt(33)], **TINY)
    assert (tmp_path / "cut" / "last.ckpt").exists()
    resumed = taskzoo.run("sentiment", out=tmp_path / "cut", resume=True, progress=False, **TINY)
    _assert_same_weights(tmp_path / "full" / "best.safetensors", tmp_path / "cut" / "best.safetensors")
    full_ckpt = torch.load(tmp_path / "full" / "last.ckpt", weights_only=True)
    cut_ckpt = torch.load(tmp_path / "cut" / "last.ckpt", weights_only=True)
    for key in full_ckpt["model"]:
        assert torch.equal(full_ckpt["model"][key], cut_ckpt["model"][key]), key
    strip = ("train/time_s", "train/samples_per_s", "total/time_s")
    assert {k: v for k, v in full.metrics.items() if k not in strip} == {
        k: v for k, v in resumed.metrics.items() if k not in strip}
    assert _records(tmp_path / "full") == _records(tmp_path / "cut")


@pytest.mark.timeout(180)
def test_resume_after_sigkill_of_the_cli(tmp_path, cli_env):
    """A real kill -9 at an arbitrary moment, then --resume, equals an unbroken run."""
    args = ["dataset=tiny", "epochs=4", "batch_size=16", "eval_every=5", "embed_dim=16",
            "hidden_dim=16", "--device", "cpu", "--quiet"]
    cmd = [sys.executable, "-m", "taskzoo.cli", "run", "sentiment"]
    subprocess.run([*cmd, "--out", str(tmp_path / "full"), *args], env=cli_env, check=True,
                   capture_output=True, timeout=120)
    cut = tmp_path / "cut"
    proc = subprocess.Popen([*cmd, "--out", str(cut), *args], env=cli_env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 90
    while time.time() < deadline and not (cut / "last.ckpt").exists():
        time.sleep(0.05)
    time.sleep(0.3)  # let it run past the first checkpoint
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    done = subprocess.run([*cmd, "--out", str(cut), "--resume", *args], env=cli_env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    _assert_same_weights(tmp_path / "full" / "best.safetensors", cut / "best.safetensors")
    a = json.loads((tmp_path / "full" / "metrics.json").read_text())
    b = json.loads((cut / "metrics.json").read_text())
    assert a["dev/accuracy"] == b["dev/accuracy"] and a["train/steps"] == b["train/steps"]


def test_resume_refuses_a_changed_recipe_and_missing_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="nothing to resume"):
        taskzoo.run("sentiment", out=tmp_path / "none", resume=True, **TINY)
    taskzoo.run("sentiment", out=tmp_path / "r", progress=False, **{**TINY, "epochs": 1})
    with pytest.raises(taskzoo.ConfigError, match="lr"):
        taskzoo.run("sentiment", out=tmp_path / "r", resume=True, progress=False,
                    **{**TINY, "epochs": 1, "lr": 0.5})


def test_corrupt_checkpoint_is_a_clear_error(tmp_path):
    taskzoo.run("sentiment", out=tmp_path / "r", progress=False, **{**TINY, "epochs": 1})
    (tmp_path / "r" / "last.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="Cannot read checkpoint"):
        taskzoo.run("sentiment", out=tmp_path / "r", resume=True, progress=False,
                    **{**TINY, "epochs": 1})


def test_early_stopping_and_best_checkpoint(tmp_path):
    # lr=0 never improves after the first evaluation: patience 2 stops after 3 evaluations
    result = taskzoo.run("sentiment", out=tmp_path / "es", progress=False,
                         **{**TINY, "lr": 0.0, "patience": 2, "epochs": 20, "warmup_steps": 0})
    evals = [r for r in _records(tmp_path / "es") if "dev/accuracy" in r]
    assert len(evals) == 3
    assert result.metrics["train/steps"] == 21 and result.metrics["train/best_step"] == 7


def test_max_steps_overrides_epochs_and_logs_loss(tmp_path):
    result = taskzoo.run("sentiment", out=tmp_path / "m", progress=False,
                         **{**TINY, "max_steps": 12, "epochs": 100})
    assert result.metrics["train/steps"] == 12
    losses = [r["train/loss"] for r in _records(tmp_path / "m") if "train/loss" in r]
    assert losses and all(l > 0 for l in losses)


def test_lr_schedules():
    cfg = TrainConfig(schedule="linear", warmup_steps=10)
    f = lr_lambda(cfg, 110)
    assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0)
    assert f(60) == pytest.approx(0.5) and f(110) == pytest.approx(0.0)
    cos = lr_lambda(TrainConfig(schedule="cosine"), 100)
    assert cos(0) == pytest.approx(1.0) and cos(50) == pytest.approx(0.5) and cos(100) == pytest.approx(0.0)
    assert lr_lambda(TrainConfig(), 100)(99) == 1.0


@pytest.mark.parametrize("ties, expected", [("first", 2), ("last", 6)])
def test_ties_pick_the_first_or_the_last_equal_evaluation(tmp_path, ties, expected):
    from taskzoo.runtime import Runtime
    from taskzoo.trainer import StepOutput, Trainer

    class Source:
        steps_per_epoch = 2

        def batches(self, state):
            for _ in range(state.batch_in_epoch, 2):
                yield torch.ones(4, 1)

        def after_update(self, state): ...

        def metrics(self):
            return {}

    model = torch.nn.Linear(1, 1)

    def step(m, batch):
        return StepOutput(m(batch).pow(2).mean(), size=len(batch))

    cfg = TrainConfig(epochs=3, lr=0.01, keep="best")
    trainer = Trainer(cfg, Runtime.create(device="cpu"), monitor="val/score", ties=ties,
                      progress=False)
    fit = trainer.fit(step, model, Source(), lambda m: {"val/score": 1.0}, tmp_path)
    assert fit.state.best_step == expected  # evaluations after steps 2, 4 and 6 all tie
    with pytest.raises(taskzoo.ConfigError, match="ties"):
        Trainer(cfg, Runtime.create(device="cpu"), ties="middle")
