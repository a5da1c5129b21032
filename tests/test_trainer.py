"""Trainer: exact resume, early stopping, schedules, checkpoints."""

from __future__ import annotations

import json
import re
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
from taskzoo.train.optim import lr_lambda
from taskzoo.train.types import Callback, SourceBase

TINY = dict(dataset="tiny", epochs=3, batch_size=16, eval_every=7, log_every=5,
            embed_dim=16, hidden_dim=16, device="cpu")


class Killed(Exception):
    pass


class KillAt(Callback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, trainer, state) -> None:
        if state.step == self.step:
            raise Killed


def _records(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = load_file(str(a)), load_file(str(b))
    assert wa.keys() == wb.keys()
    for key in wa:
        assert torch.equal(wa[key], wb[key]), key


def test_resume_after_interruption_is_exact(tmp_path):
    full = taskzoo.run("sentiment", out=tmp_path / "full", progress=False, **TINY)
    with pytest.raises(Killed):
        # step 33 is mid-epoch and between checkpoints (taken every 7 steps)
        taskzoo.run("sentiment", out=tmp_path / "cut", progress=False, callbacks=[KillAt(33)], **TINY)
    assert (tmp_path / "cut" / "last.ckpt").exists()
    resumed = taskzoo.run("sentiment", out=tmp_path / "cut", resume=True, progress=False, **TINY)
    assert_same_weights(tmp_path / "full" / "best.safetensors", tmp_path / "cut" / "best.safetensors")
    full_ckpt = torch.load(tmp_path / "full" / "last.ckpt", weights_only=True)
    cut_ckpt = torch.load(tmp_path / "cut" / "last.ckpt", weights_only=True)
    for key in full_ckpt["model"]:
        assert torch.equal(full_ckpt["model"][key], cut_ckpt["model"][key]), key
    strip = ("train/time_s", "train/samples_per_s", "total/time_s")
    assert {k: v for k, v in full.metrics.items() if k not in strip} == {
        k: v for k, v in resumed.metrics.items() if k not in strip}
    assert _records(tmp_path / "full") == _records(tmp_path / "cut")


def _eval_steps(run_dir: Path) -> list[int]:
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return []
    steps = []
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:  # a line being written
            continue
        if "dev/accuracy" in record:
            steps.append(record["step"])
    return steps


@pytest.mark.timeout(180)
def test_resume_after_sigkill_of_the_cli(tmp_path, cli_env):
    """A real kill -9 mid-run, then --resume, equals an unbroken run."""
    # 40 epochs of 16 batches: the kill lands hundreds of steps before the end
    args = ["dataset=tiny", "epochs=40", "batch_size=16", "eval_every=5", "embed_dim=16",
            "hidden_dim=16", "--device", "cpu", "--quiet"]
    cmd = [sys.executable, "-m", "taskzoo.cli", "run", "sentiment"]
    subprocess.run([*cmd, "--out", str(tmp_path / "full"), *args], env=cli_env, check=True,
                   capture_output=True, timeout=150)
    cut = tmp_path / "cut"
    proc = subprocess.Popen([*cmd, "--out", str(cut), *args], env=cli_env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        # the event: the run reports its second evaluation (each is followed by a checkpoint)
        deadline = time.time() + 90
        while time.time() < deadline and len(_eval_steps(cut)) < 2 and proc.poll() is None:
            time.sleep(0.02)
        proc.send_signal(signal.SIGSTOP)  # frozen, so what we check next is what we kill
        assert len(_eval_steps(cut)) >= 2 and not (cut / "metrics.json").exists()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    # a kill during a checkpoint write leaves atomic_path's temp file: --resume removes it
    (cut / ".last.ckpt.q1w2e3_4.tmp").write_bytes(b"half a checkpoint")
    done = subprocess.run([*cmd, "--out", str(cut), "--resume", *args], env=cli_env,
                          capture_output=True, text=True, timeout=150)
    assert done.returncode == 0, done.stderr
    assert re.search(r"removed \d+ stale temporary file\(s\) .*\.last\.ckpt\.q1w2e3_4\.tmp",
                     done.stderr), done.stderr
    assert not list(cut.glob(".*.tmp"))
    assert_same_weights(tmp_path / "full" / "best.safetensors", cut / "best.safetensors")
    a = json.loads((tmp_path / "full" / "metrics.json").read_text())
    b = json.loads((cut / "metrics.json").read_text())
    assert a["dev/accuracy"] == b["dev/accuracy"] and a["train/steps"] == b["train/steps"] == 640


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
    # lr=1e-12 moves no prediction after the first evaluation (lr=0 is not a valid lr):
    # patience 2 stops after 3 evaluations
    result = taskzoo.run("sentiment", out=tmp_path / "es", progress=False,
                         **{**TINY, "lr": 1e-12, "patience": 2, "epochs": 20, "warmup_steps": 0})
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
    from taskzoo.train.trainer import Trainer
    from taskzoo.train.types import StepOutput

    class Source(SourceBase):
        steps_per_epoch = 2

        def batches(self, state):
            for _ in range(state.batch_in_epoch, 2):
                yield torch.ones(4, 1)

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


# ---------------------------------------------------------------- engine faults (review)
class _Ones(SourceBase):
    """Batches of ones; `steps_per_epoch` can be set to lie."""

    def __init__(self, per_epoch: int = 4, yields: int | None = None) -> None:
        self.steps_per_epoch = per_epoch
        self.yields = per_epoch if yields is None else yields

    def batches(self, state):
        for _ in range(state.batch_in_epoch, self.yields):
            yield torch.ones(8, 3)


def _fit(tmp_path, source, step=None, evaluate=None, **cfg):
    from taskzoo.runtime import Runtime
    from taskzoo.train.trainer import Trainer
    from taskzoo.train.types import StepOutput

    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    step = step or (lambda m, b: StepOutput(m(b).pow(2).mean(), size=len(b)))
    trainer = Trainer(TrainConfig(**{"epochs": 2, "lr": 0.01, **cfg}),
                      Runtime.create(device="cpu"), monitor="val/x" if evaluate else None,
                      progress=False)
    return trainer, trainer.fit(step, model, source, evaluate, tmp_path)


@pytest.mark.timeout(30)  # the fault was an endless loop
def test_an_epoch_without_batches_is_a_clear_error(tmp_path):
    from taskzoo.data.loader import LoaderSource
    from taskzoo.errors import DataError

    with pytest.raises(DataError, match="0 batches per epoch"):
        _fit(tmp_path, _Ones(per_epoch=0))
    with pytest.raises(DataError, match="epoch 0 yielded no batches"):
        _fit(tmp_path, _Ones(per_epoch=3, yields=0))  # a source that promises and yields nothing
    with pytest.raises(DataError, match="training split is empty"):
        LoaderSource([], batch_size=4, collate=list)
    # DDP: 3 examples make one batch of 4, and two processes would each need one
    with pytest.raises(DataError, match="2 processes each need at least one"):
        LoaderSource([1, 2, 3], batch_size=4, collate=list, shard=(1, 2))


def test_a_source_must_implement_the_protocol(tmp_path):
    class Bare:
        steps_per_epoch = 1

        def batches(self, state):
            yield torch.ones(2, 3)

    with pytest.raises(TypeError, match="lacks total_steps, schedules_evaluation, setup"):
        _fit(tmp_path, Bare())


def test_sources_are_set_up_after_the_model_is_placed_and_before_a_resume(tmp_path, monkeypatch):
    from taskzoo.runtime import Runtime

    calls = []
    placed = Runtime.setup_model

    def setup_model(self, model):
        calls.append("place")
        return placed(self, model).double()  # a stand-in for .to("cuda") that CPU can see

    monkeypatch.setattr(Runtime, "setup_model", setup_model)

    class Recording(_Ones):
        def setup(self, model, runtime):
            calls.append(("setup", next(model.parameters()).dtype, runtime.device.type))

        def load_state_dict(self, state):
            calls.append("restore")

        def state_dict(self):
            return {"seen": torch.ones(1)}

        def batches(self, state):
            for _ in range(state.batch_in_epoch, self.yields):
                yield torch.ones(8, 3, dtype=torch.float64)

    _fit(tmp_path, Recording(), epochs=1, evaluate=lambda m: {"val/x": 0.0})
    assert calls == ["place", ("setup", torch.float64, "cpu")]
    calls.clear()
    from taskzoo.runtime import Runtime as R  # resume: setup, then the source's own state
    from taskzoo.train.trainer import Trainer
    from taskzoo.train.types import StepOutput

    trainer = Trainer(TrainConfig(epochs=2, lr=0.01), R.create(device="cpu"), progress=False)
    trainer.fit(lambda m, b: StepOutput(m(b).pow(2).mean(), size=8), torch.nn.Linear(3, 1),
                Recording(), lambda m: {"val/x": 0.0}, tmp_path, resume=True)
    assert calls[:3] == ["place", ("setup", torch.float64, "cpu"), "restore"]


def test_dqn_target_network_is_copied_from_the_placed_model(tmp_path):
    """The DQN crash on CUDA: the target was deep-copied before the model was moved."""
    from taskzoo.api import make_config, resolve_task
    from taskzoo.runtime import Runtime

    cls = resolve_task("cartpole")
    cfg = make_config(cls, {"algo": "dqn", "total_timesteps": 256, "learning_starts": 64,
                            "train_freq": 16, "gradient_steps": 2, "hidden": (8,)})
    task = cls(cfg, Runtime.create(device="cpu"))
    data = task.build_data()
    model = task.build_model(data)
    source = task.batches(data, model)
    assert source.target is None  # nothing is copied before the model has its place
    model.double()  # where the Trainer would put it (a dtype change stands in for a device)
    source.setup(model, task.runtime)
    assert source.target is not model
    assert next(source.target.parameters()).dtype == torch.float64
    assert all(not p.requires_grad for p in source.target.parameters())


def test_nan_loss_stops_the_run_naming_the_step_and_keeps_the_checkpoint_before(tmp_path):
    from taskzoo.errors import DivergenceError
    from taskzoo.train.types import StepOutput

    done = []

    def step(model, batch):
        done.append(1)
        loss = model(batch).pow(2).mean()
        if len(done) >= 13:  # the 13th optimizer step and every later one
            loss = loss * float("nan")
        return StepOutput(loss, size=len(batch))

    with pytest.raises(DivergenceError) as err:
        _fit(tmp_path, _Ones(per_epoch=4), step=step, epochs=10, eval_every=5, log_every=50,
             evaluate=lambda m: {"val/x": 0.0})
    msg = str(err.value)
    assert "became nan at step 13" in msg and "is from step 10" in msg and "lr=0.001" in msg
    ckpt = torch.load(tmp_path / "last.ckpt", weights_only=True)
    assert ckpt["state"]["step"] == 10
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values())
    records = _records(tmp_path)
    assert max(r["step"] for r in records) == 10  # nothing logged from the diverged steps


def test_inf_loss_without_a_checkpoint_says_so(tmp_path):
    from taskzoo.errors import DivergenceError
    from taskzoo.train.types import StepOutput

    def step(model, batch):
        return StepOutput(model(batch).pow(2).mean() + float("inf"), size=len(batch))

    with pytest.raises(DivergenceError, match="became inf at step 1: .*no checkpoint was written"):
        _fit(tmp_path, _Ones(), step=step)
    assert not (tmp_path / "last.ckpt").exists()


def test_a_huge_lr_is_reported_not_trained_to_nan(tmp_path):
    from taskzoo.errors import DivergenceError

    with pytest.raises(DivergenceError, match=r"became (nan|inf) at step \d+: .*lr=1e\+09"):
        taskzoo.run("sentiment", out=tmp_path / "big", progress=False, **{**TINY, "lr": 1e9})


def test_resume_refuses_another_world_size(tmp_path):
    taskzoo.run("sentiment", out=tmp_path / "r", progress=False, **{**TINY, "epochs": 1})
    ckpt = torch.load(tmp_path / "r" / "last.ckpt", weights_only=True)
    assert ckpt["world_size"] == 1
    ckpt["world_size"] = 2  # as a 2-process torchrun would have written it
    ckpt["ranks"] = ckpt["ranks"] * 2
    torch.save(ckpt, tmp_path / "r" / "last.ckpt")
    with pytest.raises(CheckpointError, match="2 process.*this one has 1.*--nproc_per_node 2"):
        taskzoo.run("sentiment", out=tmp_path / "r", resume=True, progress=False,
                    **{**TINY, "epochs": 1})


def test_final_figures_are_those_of_the_delivered_predictor(tmp_path, monkeypatch):
    """Trained in bf16 autocast; metrics.json, the returned predictor and load_run agree."""
    from taskzoo.data.tiny_sentiment import load_tiny_sentiment
    from taskzoo.tasks.sentiment.task import SentimentTask

    autocast_in_evaluate = []
    evaluate = SentimentTask.evaluate

    def recording(self, model, data, split):
        autocast_in_evaluate.append(torch.is_autocast_enabled("cpu"))
        return evaluate(self, model, data, split)

    monkeypatch.setattr(SentimentTask, "evaluate", recording)
    result = taskzoo.run("sentiment", out=tmp_path / "bf16", progress=False,
                         **{**TINY, "precision": "bf16-mixed", "epochs": 2})
    assert autocast_in_evaluate[0] is True  # validation during training: bf16, fast
    assert autocast_in_evaluate[-1] is False  # the reported figure: as delivered
    dev = load_tiny_sentiment()[1]
    texts = [t for t, _ in dev]
    mine = result.predictor(texts)
    assert mine == taskzoo.load_run(tmp_path / "bf16", device="cpu")(texts)  # scores included
    accuracy = sum(o["label"] == ("positive" if y else "negative") for o, (_, y) in zip(mine, dev))
    assert accuracy / len(dev) == result.metrics["dev/accuracy"]


# ---------------------------------------------------------------- vision recipe additions
def _linear_fit(tmp_path, cfg: dict, n: int = 10, resume: bool = False, callbacks=()):
    """SGD on a linear regression over LoaderSource batches; returns (trainer, fit, model)."""
    from taskzoo.data.loader import LoaderSource
    from taskzoo.runtime import Runtime
    from taskzoo.train.trainer import Trainer
    from taskzoo.train.types import StepOutput

    g = torch.Generator().manual_seed(3)
    x, y = torch.randn(n, 3, generator=g), torch.randn(n, 1, generator=g)
    rows = list(zip(x, y))
    source = LoaderSource(rows, batch_size=cfg.pop("batch_size"), seed=0,
                          collate=lambda b: (torch.stack([r[0] for r in b]),
                                             torch.stack([r[1] for r in b])))
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)

    def step(m, batch):
        return StepOutput(torch.nn.functional.mse_loss(m(batch[0]), batch[1]), size=len(batch[0]))

    trainer = Trainer(TrainConfig(**{"optimizer": "sgd", "momentum": 0.0, "lr": 0.1, **cfg}),
                      Runtime.create(device="cpu"), list(callbacks), progress=False)
    fit = trainer.fit(step, model, source, None, tmp_path, resume=resume)
    return trainer, fit, model


def test_gradient_accumulation_equals_the_larger_batch(tmp_path):
    # 10 examples: batches of 4, 4, 2 with accumulate=2 are the steps (4+4) and (2), exactly
    # the batches of 8 and 2; each step's gradient is the mean over its examples either way
    _, fit_acc, acc = _linear_fit(tmp_path / "a", {"batch_size": 4, "accumulate": 2, "epochs": 3})
    _, fit_big, big = _linear_fit(tmp_path / "b", {"batch_size": 8, "epochs": 3})
    assert fit_acc.state.step == fit_big.state.step == 6  # 2 optimizer steps per epoch
    torch.testing.assert_close(acc.weight, big.weight, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(acc.bias, big.bias, rtol=1e-6, atol=1e-7)
    _, fit_one, one = _linear_fit(tmp_path / "c", {"batch_size": 4, "epochs": 3})
    assert fit_one.state.step == 9 and not torch.allclose(one.weight, big.weight)


def test_ema_weights_are_evaluated_and_delivered(tmp_path):
    raw = []

    class Record(Callback):
        def on_step_end(self, trainer, state):
            raw.append(trainer.runtime.unwrap(trainer.model).weight.detach().clone())

    _, fit, model = _linear_fit(tmp_path, {"batch_size": 2, "epochs": 2, "ema": 0.8},
                                callbacks=[Record()])
    ema = raw[0]  # the first update copies the weights, then e = 0.8 e + 0.2 w
    for w in raw[1:]:
        ema = 0.8 * ema + 0.2 * w
    torch.testing.assert_close(model.weight.detach(), ema)
    assert not torch.allclose(model.weight.detach(), raw[-1])
    delivered = load_file(str(tmp_path / "best.safetensors"))
    torch.testing.assert_close(delivered["weight"], ema)


def test_biases_and_norm_weights_can_skip_weight_decay():
    from taskzoo.train.optim import build_optimizer

    net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.BatchNorm2d(4),
                              torch.nn.Flatten(), torch.nn.LazyLinear(2))
    net(torch.zeros(1, 1, 5, 5))
    opt = build_optimizer(TrainConfig(weight_decay=0.05, decay_1d=False), net)
    decays = {id(p): g["weight_decay"] for g in opt.param_groups for p in g["params"]}
    for name, p in net.named_parameters():
        assert decays[id(p)] == (0.05 if p.ndim > 1 else 0.0), name
    opt = build_optimizer(TrainConfig(weight_decay=0.05), net)  # the default decays all
    assert [g["weight_decay"] for g in opt.param_groups] == [0.05]


def test_periodic_checkpoints_resume_exactly_between_evaluations(tmp_path):
    cfg = {"batch_size": 2, "epochs": 4, "save_every": 3, "log_every": 2}
    _, full, full_model = _linear_fit(tmp_path / "full", dict(cfg))
    with pytest.raises(Killed):  # 20 steps, checkpoints at 3, 6, 9...; killed at 14
        _linear_fit(tmp_path / "cut", dict(cfg), callbacks=[KillAt(14)])
    ckpt = torch.load(tmp_path / "cut" / "last.ckpt", weights_only=True)
    assert ckpt["state"]["step"] == 12
    _, resumed, model = _linear_fit(tmp_path / "cut", dict(cfg), resume=True)
    assert resumed.state.step == full.state.step == 20
    assert torch.equal(model.weight, full_model.weight) and torch.equal(model.bias, full_model.bias)
    # the pending train/loss sums travel in the checkpoint: the logs are identical too
    assert _records(tmp_path / "full") == _records(tmp_path / "cut")


def test_checkpoints_every_few_minutes(tmp_path, monkeypatch):
    import taskzoo.train.trainer as trainer_module

    clock = iter(range(0, 10**6, 61))  # every reading of the clock is 61 s after the last
    monkeypatch.setattr(trainer_module.time, "monotonic", lambda: float(next(clock)))
    with pytest.raises(Killed):  # the clock is read at log_every (5) boundaries only
        _linear_fit(tmp_path, {"batch_size": 2, "epochs": 4, "save_minutes": 1.0,
                               "log_every": 5}, callbacks=[KillAt(12)])
    assert torch.load(tmp_path / "last.ckpt", weights_only=True)["state"]["step"] == 10


class _Pid(torch.utils.data.Dataset):
    """Each example is the id of the process that loaded it."""

    def __len__(self) -> int:
        return 8

    def __getitem__(self, i: int) -> int:
        import os

        return os.getpid()


def test_loader_processes_start_once_per_fit_and_stop_when_it_ends(tmp_path):
    # a fresh worker each epoch forks the whole training process again, and its pages are
    # then copied as training writes them: the workers must outlive the epoch, not the fit
    import os

    from taskzoo.data.loader import LoaderSource
    from taskzoo.runtime import Runtime
    from taskzoo.train.trainer import Trainer
    from taskzoo.train.types import StepOutput

    seen: list[int] = []
    source = LoaderSource(_Pid(), batch_size=4, seed=0, workers=1,
                          collate=lambda b: torch.tensor(b))
    model = torch.nn.Linear(1, 1)

    def step(m, pids):
        seen.extend(pids.tolist())
        return StepOutput(m(pids.float()[:, None] * 0).sum(), size=len(pids))

    trainer = Trainer(TrainConfig(epochs=3, lr=0.1), Runtime.create(device="cpu"), [],
                      progress=False)
    trainer.fit(step, model, source, None, tmp_path)
    assert len(seen) == 24 and len(set(seen)) == 1 and seen[0] != os.getpid()
    worker = seen[0]
    for _ in range(100):  # shut down when the fit ended: gone within moments
        try:
            os.kill(worker, 0)
        except ProcessLookupError:
            break
        import time

        time.sleep(0.05)
    else:
        raise AssertionError(f"loader process {worker} still alive after the fit")
