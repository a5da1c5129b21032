"""The types the Trainer and its tasks share: training state, step output, fit result, the
BatchSource protocol (with its defaults in SourceBase) and the Callback hooks.

They live apart from the Trainer so that sources (taskzoo.data.loader, taskzoo.rl.sources)
and tasks can use them without importing the loop.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import torch
from torch import nn

from taskzoo import runtime as rt

if TYPE_CHECKING:
    from taskzoo.train.trainer import Trainer


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
    - `state_dict()` / `load_state_dict()` hold what a checkpoint must restore;
    - `close()` (optional) runs when training ends: stop loader processes.
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

    def close(self) -> None:
        return None


class Callback:
    """Hooks into the loop; override what you need."""

    def on_step_end(self, trainer: Trainer, state: TrainState) -> None: ...

    def on_eval_end(self, trainer: Trainer, state: TrainState, metrics: dict[str, float]) -> None: ...

    def on_record(self, trainer: Trainer, record: dict[str, Any]) -> None:
        """A metrics.jsonl record, just written (by the process that writes the file). A
        callback without this method is not called."""


@dataclass
class FitResult:
    state: TrainState
    best_metrics: dict[str, float]  # evaluation at the best step (or the last one)
    history: list[dict[str, Any]]  # every evaluation record
    steps_per_sec: float
    samples_per_sec: float


def check_source(source: Any) -> None:
    """A TypeError naming what a source lacks, instead of an AttributeError mid-run."""
    if not isinstance(source, BatchSource):
        missing = [m for m in ("steps_per_epoch", "total_steps", "schedules_evaluation", "setup",
                               "batches", "after_update", "eval_due", "metrics", "state_dict",
                               "load_state_dict") if not hasattr(source, m)]
        raise TypeError(f"{type(source).__name__} is not a BatchSource: it lacks "
                        f"{', '.join(missing)} (subclass taskzoo.train.types.SourceBase for defaults)")
