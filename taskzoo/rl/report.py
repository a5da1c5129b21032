"""What an RL run reports beyond returns: when it was solved, and its learning curve."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from taskzoo.report import new_figure, png_bytes
from taskzoo.train.trainer import Trainer
from taskzoo.train.types import Callback, TrainState


def solved_summary(history: Sequence[dict[str, Any]], threshold: float | None,
                   key: str = "val/mean_return") -> dict[str, float]:
    """train/solved_at_step (environment steps) and train/solved_time_s (training time,
    evaluation excluded) of the first validation whose mean return reached `threshold`;
    -1 when none did or the env has no threshold."""
    if threshold is not None:
        for record in history:
            if record.get(key, -np.inf) >= threshold:
                return {"train/solved_at_step": float(record.get("train/env_steps", -1)),
                        "train/solved_time_s": round(float(record.get("train/time_s", -1)), 3)}
    return {"train/solved_at_step": -1.0, "train/solved_time_s": -1.0}


class SolvedStop(Callback):
    """Ends training at the first validation whose mean return reaches the threshold."""

    def __init__(self, threshold: float | None, key: str = "val/mean_return") -> None:
        self.threshold, self.key = threshold, key

    def on_eval_end(self, trainer: Trainer, state: TrainState, metrics: dict[str, float]) -> None:
        if self.threshold is not None and metrics.get(self.key, -np.inf) >= self.threshold:
            state.stopped_early = True


def learning_curve_png(episodes: Sequence[tuple[int, float]], history: Sequence[dict[str, Any]],
                       threshold: float | None, *, title: str, val_key: str = "val/mean_return",
                       xlabel: str = "environment steps") -> bytes:
    """Return against environment steps: every training episode (faint), their running mean
    over 20 episodes, and the deterministic validation means."""
    fig = new_figure(7, 4)  # on its own Agg canvas: no pyplot, no backend switch
    ax = fig.subplots()
    if episodes:
        steps = np.array([e[0] for e in episodes])
        rets = np.array([e[1] for e in episodes])
        ax.plot(steps, rets, ".", ms=2, alpha=0.25, color="tab:blue")
        k = min(20, len(rets))
        mean = np.convolve(rets, np.ones(k) / k, mode="valid")
        ax.plot(steps[k - 1:], mean, color="tab:blue", label=f"training episodes (mean of {k})")
    val = [(r["train/env_steps"], r[val_key]) for r in history
           if val_key in r and "train/env_steps" in r]
    if val:
        xs, ys = zip(*val)
        ax.plot(xs, ys, "o-", color="tab:orange", ms=3, label="validation (deterministic)")
    if threshold is not None:
        ax.axhline(threshold, color="gray", ls="--", lw=1, label=f"solved ({threshold:g})")
    ax.set(xlabel=xlabel, ylabel="episode return", title=title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return png_bytes(fig)
