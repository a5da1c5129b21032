"""The common Trainer: one loop for supervised tasks and RL agents alike.

It iterates a BatchSource (not a DataLoader) and owns optimisation, precision, evaluation,
early stopping, checkpoints with exact resume, progress and metrics.jsonl. It never branches
on what task it trains: a task that needs something new gets a hook.

Its parts live beside it, and are imported from there: the shared types in
taskzoo.train.types, the optimizer and schedule in taskzoo.train.optim, the log in
taskzoo.train.log and the checkpoint files in taskzoo.train.checkpoints.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from taskzoo import runtime as rt
from taskzoo.config import TrainConfig
from taskzoo.errors import CheckpointError, ConfigError, DataError, DivergenceError
from taskzoo.train.checkpoints import (
    CKPT_FORMAT,
    load_weights,
    read_checkpoint,
    rng_from_tensors,
    rng_to_tensors,
    save_weights,
    write_checkpoint,
)
from taskzoo.train.log import TrainLog, truncate_log
from taskzoo.train.optim import build_ema, build_optimizer, lr_lambda
from taskzoo.train.types import (
    BatchSource,
    Callback,
    FitResult,
    StepOutput,
    TrainState,
    check_source,
)

__all__ = ["Trainer"]


@dataclasses.dataclass
class _Fit:
    """What one `Trainer.fit` call works with from batch to batch."""

    step: Callable[[nn.Module, Any], StepOutput]
    source: BatchSource
    evaluate: Callable[[nn.Module], dict[str, float]] | None
    run_dir: Path
    per_epoch: int  # batches per epoch; `accumulate` of them make one optimizer step
    total: int  # optimizer steps to train for
    best_metrics: dict[str, float]  # the evaluation of the delivered weights so far
    eval_every: int | None  # optimizer steps between evaluations; None: once per epoch
    own_schedule: bool  # the source decides when to evaluate (`eval_due`)
    bar: Any  # the tqdm progress bar
    params: list[nn.Parameter]  # what gradient clipping sees


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
        check_source(source)
        with self.runtime.activate():
            return self._fit(step, model, source, evaluate, Path(run_dir), resume)

    def _fit(self, step, model, source, evaluate, run_dir: Path, resume: bool) -> FitResult:
        per_epoch = int(source.steps_per_epoch)  # batches; `accumulate` of them make one step
        if per_epoch < 1:
            raise DataError(f"{type(source).__name__} has {per_epoch} batches per epoch: "
                            "there is nothing to train on (is the training split empty?)")
        run_dir.mkdir(parents=True, exist_ok=True)
        total = self._prepare(model, source, per_epoch)
        state, best_metrics = self._start(source, run_dir, total, resume)
        fit = _Fit(step=step, source=source, evaluate=evaluate, run_dir=run_dir,
                   per_epoch=per_epoch, total=total, best_metrics=best_metrics,
                   eval_every=self.cfg.eval_every if self.cfg.eval_every > 0 else None,
                   own_schedule=bool(source.schedules_evaluation),
                   bar=self._progress_bar(total, state.step),
                   params=[p for p in self.model.parameters() if p.requires_grad])
        steps_at_start, time_at_start = state.step, state.train_time
        self._last_save = time.monotonic()
        try:
            while state.step < total and not state.stopped_early:
                if not self._epoch(fit, state):
                    break
        finally:
            fit.bar.close()
            close = getattr(source, "close", None)  # optional in the protocol
            if close is not None:
                close()
            if self._log.file is not None:
                self._log.file.close()
        self._deliver(evaluate, run_dir, fit.best_metrics)
        steps_done = state.step - steps_at_start
        train_time = max(1e-9, state.train_time - time_at_start)
        return FitResult(
            state=state,
            best_metrics=fit.best_metrics,
            history=self.history,
            steps_per_sec=steps_done / train_time,
            samples_per_sec=state.samples / max(1e-9, state.train_time),
        )

    def _prepare(self, model: nn.Module, source: BatchSource, per_epoch: int) -> int:
        """Wrap the model, set up the source, build the optimizer, EMA and schedule; return
        the number of optimizer steps to train for."""
        cfg, runtime = self.cfg, self.runtime
        model = runtime.setup_model(model)
        self.model = model
        source.setup(runtime.unwrap(model), runtime)
        self.optimizer = build_optimizer(cfg, model)
        self.ema = build_ema(runtime.unwrap(model), cfg.ema)
        # optimizer steps per epoch: an epoch's last group may hold fewer than `acc` batches
        steps_per_epoch = -(-per_epoch // cfg.accumulate)
        # An RL source knows its budget (environment steps turned into batches).
        epochs = -(-int(source.total_steps) // per_epoch) if source.total_steps else cfg.epochs
        total = cfg.max_steps if cfg.max_steps > 0 else epochs * steps_per_epoch
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lr_lambda(cfg, total))
        return total

    def _start(self, source: BatchSource, run_dir: Path, total: int, resume: bool
               ) -> tuple[TrainState, dict[str, float]]:
        """A fresh state with seeded RNGs, or the one in last.ckpt when resuming; opens
        metrics.jsonl for appending."""
        cfg, runtime = self.cfg, self.runtime
        state = TrainState(total_steps=total)
        best_metrics: dict[str, float] = {}
        self._ckpt_step: int | None = None
        self.run_dir = run_dir
        self._log = TrainLog(None, runtime.device)
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
        return state, best_metrics

    def _progress_bar(self, total: int, initial: int) -> Any:
        # progress=None lets tqdm decide: a bar on a terminal, silence in a pipe or CI log.
        return tqdm(total=total, initial=initial, desc="train", unit="step",
                    disable=(None if self.progress is None else not self.progress)
                    if self.runtime.is_main else True,
                    dynamic_ncols=True, leave=False)

    def _epoch(self, fit: _Fit, state: TrainState) -> bool:
        """Train through (the rest of) one epoch, then evaluate if it is due; False when the
        run stopped early."""
        runtime, per_epoch = self.runtime, fit.per_epoch
        self.model.train()
        steps_before, resumed_at = state.step, state.batch_in_epoch
        finished_epoch, t0 = self._train_batches(fit, state)
        if state.step == steps_before and resumed_at < per_epoch:
            # without this, a source that yields nothing would loop here forever
            raise DataError(
                f"epoch {state.epoch} yielded no batches ({type(fit.source).__name__}, "
                f"{per_epoch} expected from batch {state.batch_in_epoch}): the "
                "training data is empty or smaller than one batch per process")
        runtime.synchronize()
        state.train_time += time.perf_counter() - t0
        if state.stopped_early:
            return False
        if finished_epoch:
            state.epoch += 1
            state.batch_in_epoch = 0
        # In-loop evaluations never fall on the last step, so this one is never a repeat.
        if ((finished_epoch and not fit.eval_every and not fit.own_schedule)
                or state.step >= fit.total):
            fit.best_metrics = self._eval_and_save(fit.evaluate, fit.source, state, fit.run_dir,
                                                   fit.best_metrics, fit.bar)
        return True

    def _train_batches(self, fit: _Fit, state: TrainState) -> tuple[bool, float]:
        """The source's batches of this epoch, with the evaluations and periodic checkpoints
        that fall between them. Returns whether the epoch was finished and when the clock of
        the training time last started."""
        runtime = self.runtime
        t0 = time.perf_counter()
        for batch in fit.source.batches(state):
            if not self._accumulate(fit, state, batch):
                continue
            self._optimizer_step(fit, state)
            if state.step >= fit.total:
                return state.batch_in_epoch >= fit.per_epoch, t0
            if ((fit.eval_every and state.step % fit.eval_every == 0)
                    or (fit.own_schedule and fit.source.eval_due(state))):
                runtime.synchronize()
                state.train_time += time.perf_counter() - t0
                fit.best_metrics = self._eval_and_save(fit.evaluate, fit.source, state,
                                                       fit.run_dir, fit.best_metrics, fit.bar)
                self.model.train()
                t0 = time.perf_counter()
                if state.stopped_early:
                    return False, t0
            elif self._periodic_save_due(state):
                runtime.synchronize()
                state.train_time += time.perf_counter() - t0
                self._save_checkpoint(fit.run_dir / "last.ckpt", fit.source, state,
                                      fit.best_metrics)
                runtime.barrier()
                t0 = time.perf_counter()
        return True, t0

    def _accumulate(self, fit: _Fit, state: TrainState, batch: Any) -> bool:
        """Forward and backward one batch, its loss scaled for gradient accumulation; True
        when it is the last batch of an optimizer step."""
        runtime, acc = self.runtime, self.cfg.accumulate
        group = state.batch_in_epoch // acc * acc  # first batch of this step
        size = min(acc, fit.per_epoch - group)  # batches in this step
        first = state.batch_in_epoch == group
        last = state.batch_in_epoch + 1 == group + size
        batch = runtime.to_device(batch)
        if first:
            self.optimizer.zero_grad(set_to_none=True)
        # DDP all-reduces gradients on the step's last batch only
        with runtime.no_sync(self.model, not last):
            with runtime.autocast():
                out = fit.step(self.model, batch)
            runtime.backward(out.loss / size if size > 1 else out.loss)
        state.batch_in_epoch += 1
        state.samples += out.size
        self._log.add(out, state.step + 1)
        return last

    def _optimizer_step(self, fit: _Fit, state: TrainState) -> None:
        """Apply the accumulated gradients, advance the schedule and EMA, and log."""
        runtime = self.runtime
        runtime.optimizer_step(self.optimizer, fit.params, self.cfg.grad_clip)
        self.scheduler.step()
        if self.ema is not None:
            self.ema.update_parameters(runtime.unwrap(self.model))
        state.step += 1
        fit.source.after_update(state)
        fit.bar.update(1)
        for cb in self.callbacks:
            cb.on_step_end(self, state)
        if state.step % self.cfg.log_every == 0:
            self._flush_log(state, fit.source, fit.bar)

    def _deliver(self, evaluate: Callable[[nn.Module], dict[str, float]] | None,
                 run_dir: Path, best_metrics: dict[str, float]) -> None:
        """Leave the delivered weights in the model and in best.safetensors."""
        if (self.cfg.keep == "best" and evaluate is not None and self.monitor
                and (run_dir / "best.safetensors").exists()):
            # with keep="last" the weights in memory are already the ones delivered
            self._load_best(run_dir / "best.safetensors")
        else:
            if self.ema is not None:  # the average is what was evaluated and is delivered
                self.runtime.unwrap(self.model).load_state_dict(self.ema.module.state_dict())
            if evaluate is None or not best_metrics:
                self._save_best(run_dir / "best.safetensors")
                self.runtime.barrier()

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
            self._write_record(record)
            bar.set_postfix(loss=f"{record['train/loss']:.4f}", refresh=False)

    def _write_record(self, record: dict[str, Any]) -> None:
        """metrics.jsonl's next record, then the callbacks that follow the file (a logger)."""
        if self._log.file is None:
            return
        self._log.write(record)
        for cb in self.callbacks:
            on_record = getattr(cb, "on_record", None)  # optional: a plain object may lack it
            if on_record is not None:
                on_record(self, record)

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
        self._write_record(record)
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
        save_weights(model, path)

    def _load_best(self, path: Path) -> None:
        model = self.runtime.unwrap(self.model)
        model.load_state_dict(load_weights(path, self.runtime.device))
        if self.ema is not None:  # keep the average in step with what is delivered
            self.ema.module.load_state_dict(model.state_dict())

    def _save_checkpoint(self, path, source, state, best_metrics) -> None:
        bad = self._log.first_nonfinite(state)  # never checkpoint a diverged run
        if bad is not None:
            self._diverged(*bad)
        self._last_save = time.monotonic()
        # Every process's random streams and source (its envs, its replay buffer): under DDP
        # rank r resumes with its own, so the processes stay as different as they were.
        ranks = self.runtime.gather({"rng": rng_to_tensors(rt.rng_state()),
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
        write_checkpoint(path, ckpt)
        self._ckpt_step = state.step

    def _load_checkpoint(self, path: Path, source) -> tuple[TrainState, dict[str, float]]:
        ckpt = read_checkpoint(path, self.runtime.world_size)
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
        rt.set_rng_state(rng_from_tensors(mine["rng"]))
        self.history = list(ckpt.get("history", []))
        return TrainState(**ckpt["state"]), dict(ckpt.get("best_metrics", {}))

    @staticmethod
    def _truncate_log(path: Path, step: int) -> None:
        """Drop records written after the checkpoint so the resumed log equals an unbroken one."""
        truncate_log(path, step)
