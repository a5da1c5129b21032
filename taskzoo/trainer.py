"""The common Trainer: one loop for supervised tasks and RL agents alike.

It iterates a BatchSource (not a DataLoader) and owns optimisation, precision, evaluation,
early stopping, checkpoints with exact resume, progress and metrics.jsonl. It never branches
on what task it trains: a task that needs something new gets a hook.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from safetensors.torch import save_file
from torch import nn
from tqdm.auto import tqdm

from taskzoo import runtime as rt
from taskzoo.config import TrainConfig
from taskzoo.errors import CheckpointError, ConfigError, DataError, DivergenceError
from taskzoo.files import atomic_path

CKPT_FORMAT = 2  # 2: world size and per-process RNG/source states; 1 is still read


@dataclass
class TrainState:
    """Where training stands; saved in last.ckpt and restored on resume."""

    step: int = 0  # optimizer steps done
    epoch: int = 0  # epochs started (an RL source's "epoch" is one rollout)
    batch_in_epoch: int = 0  # batches consumed in the current epoch
    samples: int = 0  # examples (or env transitions) trained on
    total_steps: int = 0  # the step budget
    best: float | None = None  # best monitored value so far
    best_step: int = -1  # step at which `best` was reached
    bad_evals: int = 0  # evaluations since the last improvement
    stopped_early: bool = False
    train_time: float = 0.0  # seconds spent in training steps (evaluation excluded)


@dataclass
class StepOutput:
    """What a task's `step` returns: the loss to minimise, scalar logs and the batch size."""

    loss: torch.Tensor
    logs: dict[str, torch.Tensor | float] = field(default_factory=dict)
    size: int = 0


@runtime_checkable
class BatchSource(Protocol):
    """What the Trainer iterates. Subclass `SourceBase`, which supplies the defaults.

    - `setup(model, runtime)` runs once the model sits on its device, before a checkpoint
      is restored (RL: the target network is copied from the placed model here);
    - `batches(state)` yields the batches of the current epoch starting at
      `state.batch_in_epoch` (so a resumed run continues mid-epoch in the same order);
    - `after_update(state)` runs after each optimizer step (RL: sync target nets);
    - `eval_due(state)` is asked after each step when `schedules_evaluation` is True
      (RL: every N environment steps); otherwise the Trainer evaluates every `eval_every`
      steps or at the end of each epoch;
    - `metrics()` returns source-side figures (RL: episode returns);
    - `state_dict()` / `load_state_dict()` hold what a checkpoint must restore.
    """

    steps_per_epoch: int  # optimizer steps in one epoch; at least 1
    total_steps: int  # the source's own budget of optimizer steps; 0 = epochs decide
    schedules_evaluation: bool  # True: eval_due(state) decides when to evaluate

    def setup(self, model: nn.Module, runtime: rt.Runtime) -> None: ...

    def batches(self, state: TrainState) -> Iterator[Any]: ...

    def after_update(self, state: TrainState) -> None: ...

    def eval_due(self, state: TrainState) -> bool: ...

    def metrics(self) -> dict[str, float]: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class SourceBase:
    """Defaults of the BatchSource protocol: a subclass sets `steps_per_epoch` and
    implements `batches`; everything else is optional."""

    steps_per_epoch: int = 0
    total_steps: int = 0
    schedules_evaluation: bool = False

    def setup(self, model: nn.Module, runtime: rt.Runtime) -> None:
        return None

    def batches(self, state: TrainState) -> Iterator[Any]:
        raise NotImplementedError

    def after_update(self, state: TrainState) -> None:
        return None

    def eval_due(self, state: TrainState) -> bool:
        return False

    def metrics(self) -> dict[str, float]:
        return {}

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        return None


class Callback:
    """Hooks into the loop; override what you need."""

    def on_step_end(self, trainer: Trainer, state: TrainState) -> None: ...

    def on_eval_end(self, trainer: Trainer, state: TrainState, metrics: dict[str, float]) -> None: ...


@dataclass
class FitResult:
    state: TrainState
    best_metrics: dict[str, float]  # evaluation at the best step (or the last one)
    history: list[dict[str, Any]]  # every evaluation record
    steps_per_sec: float
    samples_per_sec: float


def _check_source(source: Any) -> None:
    """A TypeError naming what a source lacks, instead of an AttributeError mid-run."""
    if not isinstance(source, BatchSource):
        missing = [m for m in ("steps_per_epoch", "total_steps", "schedules_evaluation", "setup",
                               "batches", "after_update", "eval_due", "metrics", "state_dict",
                               "load_state_dict") if not hasattr(source, m)]
        raise TypeError(f"{type(source).__name__} is not a BatchSource: it lacks "
                        f"{', '.join(missing)} (subclass taskzoo.trainer.SourceBase for defaults)")


def param_groups(cfg: TrainConfig, model: nn.Module) -> list[dict[str, Any]]:
    """The trainable parameters in optimizer groups: with `decay_1d=False`, biases and norm
    weights (every 1-D tensor) get no weight decay, as in most vision recipes (decaying a
    BatchNorm scale only fights the norm); everything else gets `weight_decay`."""
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.decay_1d or not cfg.weight_decay:
        return [{"params": params, "weight_decay": cfg.weight_decay}]
    matrices = [p for p in params if p.ndim > 1]
    vectors = [p for p in params if p.ndim <= 1]
    return [g for g in ({"params": matrices, "weight_decay": cfg.weight_decay},
                        {"params": vectors, "weight_decay": 0.0}) if g["params"]]


def build_optimizer(cfg: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    kinds = {"adamw": torch.optim.AdamW, "adam": torch.optim.Adam, "sgd": torch.optim.SGD}
    if cfg.optimizer not in kinds:
        raise ConfigError(f"optimizer={cfg.optimizer!r}: expected adamw, adam or sgd")
    groups = param_groups(cfg, model)
    kwargs: dict[str, Any] = {"lr": cfg.lr}
    if cfg.optimizer == "sgd":
        kwargs.update(momentum=cfg.momentum, nesterov=cfg.nesterov and cfg.momentum > 0)
    try:
        # One fused kernel per step instead of a loop over tensors: on CPU, AdamW over a
        # 2M-parameter tagger took 24 ms a step unfused and 4 ms fused.
        return kinds[cfg.optimizer](groups, fused=True, **kwargs)
    except (RuntimeError, TypeError, ValueError):  # a device or dtype without a fused kernel
        return kinds[cfg.optimizer](groups, **kwargs)


def lr_lambda(cfg: TrainConfig, total_steps: int) -> Callable[[int], float]:
    warm = max(0, cfg.warmup_steps)
    decay = max(1, total_steps - warm)

    def factor(step: int) -> float:
        if warm and step < warm:
            return (step + 1) / warm
        progress = min(1.0, (step - warm) / decay)
        if cfg.schedule == "linear":
            return 1.0 - progress
        if cfg.schedule == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * progress))
        return 1.0

    return factor


class Trainer:
    """Train `model` on `source` with the optimisation recipe of a TrainConfig.

    >>> trainer = Trainer(cfg, Runtime.create(device="cpu"))            # doctest: +SKIP
    >>> result = trainer.fit(step_fn, model, source, evaluate, run_dir) # doctest: +SKIP
    """

    def __init__(
        self,
        cfg: TrainConfig,
        runtime: rt.Runtime,
        callbacks: Sequence[Callback] = (),
        *,
        monitor: str | None = None,
        mode: str = "max",
        ties: str = "first",
        progress: bool | None = None,
    ) -> None:
        if mode not in ("max", "min"):
            raise ConfigError(f"mode={mode!r}: expected 'max' or 'min'")
        self.cfg = cfg
        self.runtime = runtime
        self.callbacks = list(callbacks)
        self.monitor = monitor
        self.mode = mode
        if ties not in ("first", "last"):
            raise ConfigError(f"ties={ties!r}: expected 'first' or 'last'")
        self.ties = ties  # which of equally good evaluations is kept as best
        self.progress = progress
        self.history: list[dict[str, Any]] = []

    # ------------------------------------------------------------------ main loop
    def fit(
        self,
        step: Callable[[nn.Module, Any], StepOutput],
        model: nn.Module,
        source: BatchSource,
        evaluate: Callable[[nn.Module], dict[str, float]] | None,
        run_dir: Path,
        *,
        resume: bool = False,
    ) -> FitResult:
        _check_source(source)
        with self.runtime.activate():
            return self._fit(step, model, source, evaluate, Path(run_dir), resume)

    def _fit(self, step, model, source, evaluate, run_dir: Path, resume: bool) -> FitResult:
        cfg, runtime = self.cfg, self.runtime
        per_epoch = int(source.steps_per_epoch)  # batches; `accumulate` of them make one step
        if per_epoch < 1:
            raise DataError(f"{type(source).__name__} has {per_epoch} batches per epoch: "
                            "there is nothing to train on (is the training split empty?)")
        acc = cfg.accumulate
        run_dir.mkdir(parents=True, exist_ok=True)
        model = runtime.setup_model(model)
        self.model = model
        source.setup(runtime.unwrap(model), runtime)
        self.optimizer = build_optimizer(cfg, model)
        self.ema = _ema(runtime.unwrap(model), cfg.ema)
        # optimizer steps per epoch: an epoch's last group may hold fewer than `acc` batches
        steps_per_epoch = -(-per_epoch // acc)
        # An RL source knows its budget (environment steps turned into batches).
        epochs = -(-int(source.total_steps) // per_epoch) if source.total_steps else cfg.epochs
        total = cfg.max_steps if cfg.max_steps > 0 else epochs * steps_per_epoch
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lr_lambda(cfg, total))
        state = TrainState(total_steps=total)
        best_metrics: dict[str, float] = {}
        self._ckpt_step: int | None = None
        self.run_dir = run_dir
        self._log = _TrainLog(None, runtime.device)
        if resume and (run_dir / "last.ckpt").exists():
            state, best_metrics = self._load_checkpoint(run_dir / "last.ckpt", source)
            self._ckpt_step = state.step
            if runtime.is_main:
                self._truncate_log(run_dir / "metrics.jsonl", state.step)
        else:
            # each DDP process draws its own dropout masks (rank 0 keeps the seed itself)
            rt.seed_everything(cfg.seed, runtime.rank)
            if runtime.is_main:
                (run_dir / "metrics.jsonl").unlink(missing_ok=True)
        self.state = state
        # Under DDP only rank 0 writes files; the others compute the same evaluations.
        self._log.file = (open(run_dir / "metrics.jsonl", "a", encoding="utf-8")
                          if runtime.is_main else None)
        eval_every = cfg.eval_every if cfg.eval_every > 0 else None
        own_schedule = bool(source.schedules_evaluation)
        # progress=None lets tqdm decide: a bar on a terminal, silence in a pipe or CI log.
        bar = tqdm(total=total, initial=state.step, desc="train", unit="step",
                   disable=(None if self.progress is None else not self.progress)
                   if runtime.is_main else True,
                   dynamic_ncols=True, leave=False)
        params = [p for p in model.parameters() if p.requires_grad]
        steps_at_start, time_at_start = state.step, state.train_time
        self._last_save = time.monotonic()
        try:
            while state.step < total and not state.stopped_early:
                model.train()
                t0 = time.perf_counter()
                finished_epoch = True
                steps_before, resumed_at = state.step, state.batch_in_epoch
                for batch in source.batches(state):
                    group = state.batch_in_epoch // acc * acc  # first batch of this step
                    size = min(acc, per_epoch - group)  # batches in this step
                    first = state.batch_in_epoch == group
                    last = state.batch_in_epoch + 1 == group + size
                    batch = runtime.to_device(batch)
                    if first:
                        self.optimizer.zero_grad(set_to_none=True)
                    # DDP all-reduces gradients on the step's last batch only
                    with runtime.no_sync(model, not last):
                        with runtime.autocast():
                            out = step(model, batch)
                        runtime.backward(out.loss / size if size > 1 else out.loss)
                    state.batch_in_epoch += 1
                    state.samples += out.size
                    self._log.add(out, state.step + 1)
                    if not last:
                        continue
                    runtime.optimizer_step(self.optimizer, params, cfg.grad_clip)
                    self.scheduler.step()
                    if self.ema is not None:
                        self.ema.update_parameters(runtime.unwrap(model))
                    state.step += 1
                    source.after_update(state)
                    bar.update(1)
                    for cb in self.callbacks:
                        cb.on_step_end(self, state)
                    if state.step % cfg.log_every == 0:
                        self._flush_log(state, source, bar)
                    if state.step >= total:
                        finished_epoch = state.batch_in_epoch >= per_epoch
                        break
                    if ((eval_every and state.step % eval_every == 0)
                            or (own_schedule and source.eval_due(state))):
                        runtime.synchronize()
                        state.train_time += time.perf_counter() - t0
                        best_metrics = self._eval_and_save(evaluate, source, state, run_dir,
                                                           best_metrics, bar)
                        model.train()
                        t0 = time.perf_counter()
                        if state.stopped_early:
                            finished_epoch = False
                            break
                    elif self._periodic_save_due(state):
                        runtime.synchronize()
                        state.train_time += time.perf_counter() - t0
                        self._save_checkpoint(run_dir / "last.ckpt", source, state, best_metrics)
                        runtime.barrier()
                        t0 = time.perf_counter()
                if state.step == steps_before and resumed_at < per_epoch:
                    # without this, a source that yields nothing would loop here forever
                    raise DataError(
                        f"epoch {state.epoch} yielded no batches ({type(source).__name__}, "
                        f"{per_epoch} expected from batch {state.batch_in_epoch}): the "
                        "training data is empty or smaller than one batch per process")
                runtime.synchronize()
                state.train_time += time.perf_counter() - t0
                if state.stopped_early:
                    break
                if finished_epoch:
                    state.epoch += 1
                    state.batch_in_epoch = 0
                # In-loop evaluations never fall on the last step, so this one is never a repeat.
                if (finished_epoch and not eval_every and not own_schedule) or state.step >= total:
                    best_metrics = self._eval_and_save(evaluate, source, state, run_dir,
                                                       best_metrics, bar)
        finally:
            bar.close()
            if self._log.file is not None:
                self._log.file.close()
        if (cfg.keep == "best" and evaluate is not None and self.monitor
                and (run_dir / "best.safetensors").exists()):
            # with keep="last" the weights in memory are already the ones delivered
            self._load_best(run_dir / "best.safetensors")
        else:
            if self.ema is not None:  # the average is what was evaluated and is delivered
                runtime.unwrap(model).load_state_dict(self.ema.module.state_dict())
            if evaluate is None or not best_metrics:
                self._save_best(run_dir / "best.safetensors")
                runtime.barrier()
        steps_done = state.step - steps_at_start
        train_time = max(1e-9, state.train_time - time_at_start)
        return FitResult(
            state=state,
            best_metrics=best_metrics,
            history=self.history,
            steps_per_sec=steps_done / train_time,
            samples_per_sec=state.samples / max(1e-9, state.train_time),
        )

    def _periodic_save_due(self, state: TrainState) -> bool:
        """save_every steps, or save_minutes since the last checkpoint. The clock is read
        at log_every boundaries only, and under DDP rank 0's reading decides for all."""
        cfg = self.cfg
        if cfg.save_every and state.step % cfg.save_every == 0:
            return True
        if not cfg.save_minutes or state.step % cfg.log_every:
            return False
        due = time.monotonic() - self._last_save >= 60.0 * cfg.save_minutes
        return self.runtime.broadcast_flag(due)

    def _evaluated_model(self) -> nn.Module:
        """What evaluations see and checkpoints deliver: the EMA of the weights when on."""
        return self.ema.module if self.ema is not None else self.runtime.unwrap(self.model)

    # ------------------------------------------------------------------ evaluation
    def _flush_log(self, state: TrainState, source: BatchSource, bar: Any) -> None:
        bad = self._log.first_nonfinite(state)
        if bad is not None:
            self._diverged(*bad)
        record = self._log.flush(state)
        if record is not None:
            record["train/lr"] = self.scheduler.get_last_lr()[0]
            record.update(source.metrics())
            self._log.write(record)
            bar.set_postfix(loss=f"{record['train/loss']:.4f}", refresh=False)

    def _eval_and_save(self, evaluate, source, state, run_dir, best_metrics, bar):
        # (the flush below also stops a diverged run before anything is evaluated or saved)
        # Flushing here makes the log identical whether or not the run was resumed from this point.
        self._flush_log(state, source, bar)
        metrics: dict[str, float] = {}
        if evaluate is not None:
            model = self._evaluated_model()
            model.eval()
            with self.runtime.inference():
                metrics = {k: float(v) for k, v in evaluate(model).items()}
        record = {"step": state.step, "epoch": state.epoch, **metrics}
        self.history.append({**record, "train/time_s": state.train_time})
        self._log.write(record)
        improved = False
        if self.monitor and metrics:
            if self.monitor not in metrics:
                raise ConfigError(
                    f"monitor {self.monitor!r} is not among the evaluation metrics {sorted(metrics)}"
                )
            value = metrics[self.monitor]
            better = (state.best is None or (value > state.best if self.mode == "max"
                                             else value < state.best)
                      or (self.ties == "last" and value == state.best))
            if better:
                state.best, state.best_step, state.bad_evals = value, state.step, 0
                improved = True
            else:
                state.bad_evals += 1
                if self.cfg.patience and state.bad_evals >= self.cfg.patience:
                    state.stopped_early = True
        else:
            improved = True
        if self.cfg.keep == "last":
            # Selecting weights on the split we report would flatter the figure; "last"
            # delivers the final weights and still logs every evaluation.
            improved = True
        if improved:
            best_metrics = metrics
            self._save_best(run_dir / "best.safetensors")
        for cb in self.callbacks:
            cb.on_eval_end(self, state, metrics)
        self._save_checkpoint(run_dir / "last.ckpt", source, state, best_metrics)
        self.runtime.barrier()  # files are complete before any process reads them
        return best_metrics

    def _diverged(self, step: int, value: float) -> None:
        """Stop the run: the loss of optimizer step `step` was NaN or infinite. Checked before
        any evaluation or checkpoint, so last.ckpt always holds finite weights."""
        where = self.run_dir / "last.ckpt"
        kept = (f"{where} is from step {self._ckpt_step}, before it" if self._ckpt_step is not None
                else "no checkpoint was written before it")
        lr = self.cfg.lr
        clip = "" if self.cfg.grad_clip else " or gradient clipping (grad_clip=1)"
        raise DivergenceError(
            f"train/loss became {value} at step {step}: training diverged and stopped; {kept}. "
            f"Try a lower learning rate than lr={lr:g} (e.g. lr={lr / 10:g}){clip}")

    # ------------------------------------------------------------------ checkpoints
    def _save_best(self, path: Path) -> None:
        if not self.runtime.is_main:
            return
        model = self._evaluated_model()
        tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
        with atomic_path(path) as tmp:
            save_file(tensors, str(tmp), metadata={"format": "pt"})

    def _load_best(self, path: Path) -> None:
        from safetensors.torch import load_file

        model = self.runtime.unwrap(self.model)
        model.load_state_dict(load_file(str(path), device=str(self.runtime.device)))
        if self.ema is not None:  # keep the average in step with what is delivered
            self.ema.module.load_state_dict(model.state_dict())

    def _save_checkpoint(self, path, source, state, best_metrics) -> None:
        bad = self._log.first_nonfinite(state)  # never checkpoint a diverged run
        if bad is not None:
            self._diverged(*bad)
        self._last_save = time.monotonic()
        # Every process's random streams and source (its envs, its replay buffer): under DDP
        # rank r resumes with its own, so the processes stay as different as they were.
        ranks = self.runtime.gather({"rng": _rng_to_tensors(rt.rng_state()),
                                     "source": source.state_dict()})
        if not self.runtime.is_main:
            return
        model = self.runtime.unwrap(self.model)
        ckpt = {
            "format": CKPT_FORMAT,
            "world_size": self.runtime.world_size,
            "model": model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.runtime.scaler.state_dict() if self.runtime.scaler else None,
            "state": dataclasses.asdict(state),
            "best_metrics": best_metrics,
            "history": self.history,
            "ranks": ranks,
            "ema": self.ema.state_dict() if self.ema is not None else None,
            # train/ sums since the last metrics.jsonl record: a resumed log stays identical
            "log": self._log.state_dict(),
        }
        with atomic_path(path) as tmp:
            torch.save(ckpt, tmp)
        self._ckpt_step = state.step

    def _load_checkpoint(self, path: Path, source) -> tuple[TrainState, dict[str, float]]:
        try:
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # corrupt or foreign file: say so instead of a torch traceback
            raise CheckpointError(f"Cannot read checkpoint {path}: {exc}") from None
        if not isinstance(ckpt, dict) or ckpt.get("format") not in (1, CKPT_FORMAT):
            raise CheckpointError(f"{path} is not a taskzoo checkpoint (format {CKPT_FORMAT})")
        if ckpt["format"] == 1:  # one process; rng and source at the top level
            ckpt["ranks"] = [{"rng": ckpt["rng"], "source": ckpt.get("source") or {}}]
        world, now = int(ckpt.get("world_size", 1)), self.runtime.world_size
        if world != now:
            # each process's share of every epoch and its random streams depend on the count
            raise CheckpointError(
                f"{path} was written by a run of {world} process(es), this one has {now}: resume "
                f"it with {world} (" + ("no torchrun" if world == 1 else
                                        f"torchrun --nproc_per_node {world} ...") + ")")
        model = self.runtime.unwrap(self.model)
        model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        if self.runtime.scaler is not None and ckpt.get("scaler"):
            self.runtime.scaler.load_state_dict(ckpt["scaler"])
        if self.ema is not None:
            if not ckpt.get("ema"):
                raise CheckpointError(f"{path} holds no EMA weights; resume with ema=0")
            self.ema.load_state_dict(ckpt["ema"])
        if ckpt.get("log"):
            self._log.load_state_dict(ckpt["log"])
        mine = ckpt["ranks"][self.runtime.rank]
        if mine.get("source"):
            source.load_state_dict(mine["source"])
        rt.set_rng_state(_rng_from_tensors(mine["rng"]))
        self.history = list(ckpt.get("history", []))
        return TrainState(**ckpt["state"]), dict(ckpt.get("best_metrics", {}))

    @staticmethod
    def _truncate_log(path: Path, step: int) -> None:
        """Drop records written after the checkpoint so the resumed log equals an unbroken one."""
        if not path.exists():
            return
        keep = []
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                if json.loads(line).get("step", 0) <= step:
                    keep.append(line)
            except json.JSONDecodeError:
                break  # a line cut by the kill
        path.write_text("".join(k + "\n" for k in keep), encoding="utf-8")


class _TrainLog:
    """Running sums of the step logs, turned into one metrics.jsonl record every log_every steps.

    Sums stay on the device so logging costs no host sync per step."""

    def __init__(self, log_file: Any, device: torch.device) -> None:
        self.file = log_file
        self.loss = torch.zeros((), device=device)
        self.sums: dict[str, torch.Tensor] = {}
        self.keys: tuple[str, ...] = ()
        self.acc: torch.Tensor | None = None  # [loss, *logs] summed since the last fold
        self.rows: list[tuple[int, torch.Tensor]] = []  # (step, row) of each batch since the flush
        self.n = 0

    def add(self, out: StepOutput, step: int) -> None:
        keys = tuple(out.logs)
        if keys != self.keys:
            self._fold()  # a step with other log keys: keep what was summed so far
            self.keys = keys
        # one stacked add instead of one per value: on CPU each tiny op costs ~8 us, which
        # is a fifth of an RL agent's whole optimizer step
        vals = [out.loss.detach().float().reshape(())]
        for v in out.logs.values():
            vals.append(v.detach().float().reshape(()) if isinstance(v, torch.Tensor)
                        else torch.tensor(float(v)))
        row = torch.stack([v.to(self.loss.device) for v in vals])
        self.acc = row if self.acc is None else self.acc + row
        self.rows.append((step, row))
        self.n += 1

    def first_nonfinite(self, state: TrainState) -> tuple[int, float] | None:
        """(step, loss) of the first NaN or infinite loss since the last flush, else None.

        A NaN or inf poisons the running sum, so one check of it suffices while all is well;
        the rows are searched only when it is not finite."""
        if not self.rows:
            return None
        total = self.loss + (self.acc[0] if self.acc is not None else 0.0)
        if bool(torch.isfinite(total)):
            return None
        losses = torch.stack([r[0] for _, r in self.rows])
        bad = torch.nonzero(~torch.isfinite(losses))
        first = int(bad[0, 0]) if len(bad) else len(losses) - 1  # finite ones summing to inf
        return self.rows[first][0], float(losses[first])

    def state_dict(self) -> dict[str, Any]:
        """The sums since the last record, exactly (a resumed run adds to the same floats)."""
        return {"loss": self.loss.detach().cpu(), "n": self.n, "keys": list(self.keys),
                "acc": None if self.acc is None else self.acc.detach().cpu(),
                "sums": {k: v.detach().cpu() for k, v in self.sums.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        dev = self.loss.device
        self.loss = state["loss"].to(dev)
        self.n, self.keys = int(state["n"]), tuple(state["keys"])
        self.acc = None if state["acc"] is None else state["acc"].to(dev)
        self.sums = {k: v.to(dev) for k, v in state["sums"].items()}
        self.rows = []

    def _fold(self) -> None:
        if self.acc is not None:
            self.loss += self.acc[0]
            for k, v in zip(self.keys, self.acc[1:]):
                self.sums[k] = self.sums[k] + v if k in self.sums else v.clone()
        self.acc = None

    def flush(self, state: TrainState) -> dict[str, Any] | None:
        if self.n == 0:
            return None
        self._fold()
        record: dict[str, Any] = {"step": state.step, "epoch": state.epoch,
                                  "train/loss": float(self.loss) / self.n}
        record.update({f"train/{k}": float(v) / self.n for k, v in self.sums.items()})
        self.loss.zero_()
        self.sums.clear()
        self.rows.clear()
        self.n = 0
        return record

    def write(self, record: dict[str, Any]) -> None:
        if self.file is None:
            return
        self.file.write(json.dumps(record) + "\n")
        self.file.flush()


def _ema(model: nn.Module, decay: float) -> torch.optim.swa_utils.AveragedModel | None:
    """An exponential moving average of the weights (and of BatchNorm's running statistics),
    updated after every optimizer step; None when decay is 0."""
    if not decay:
        return None
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)


def _rng_to_tensors(state: dict[str, Any]) -> dict[str, Any]:
    # weights_only loading accepts tensors and plain containers, not numpy arrays.
    version, internal, gauss = state["python"]
    name, keys, pos, has_gauss, cached = state["numpy"]
    out = {
        "python": [version, torch.tensor(internal, dtype=torch.int64), gauss],
        "numpy": [name, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss),
                  float(cached)],
        "torch": state["torch"],
    }
    if "cuda" in state:
        out["cuda"] = state["cuda"]
    return out


def _rng_from_tensors(state: dict[str, Any]) -> dict[str, Any]:
    version, internal, gauss = state["python"]
    name, keys, pos, has_gauss, cached = state["numpy"]
    out = {
        "python": (version, tuple(int(x) for x in internal.tolist()), gauss),
        "numpy": (name, keys.numpy().astype(np.uint32), pos, has_gauss, cached),
        "torch": state["torch"],
    }
    if "cuda" in state:
        out["cuda"] = state["cuda"]
    return out
