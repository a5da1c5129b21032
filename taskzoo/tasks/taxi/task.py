"""Taxi (Dietterich 2000): pick up and drop off a passenger; v4 = v3 without rain/fickle."""

from __future__ import annotations

from typing import Any, ClassVar

from taskzoo.tasks import TASKS
from taskzoo.tasks.base import Reference
from taskzoo.tasks.common.tabular import TabularTask


@TASKS.register("taxi")
class Taxi(TabularTask):
    """Taxi (Dietterich 2000): pick up and drop off a passenger; v4 = v3 without rain/fickle."""

    name = "taxi"
    description = "Taxi-v4 (= v3 dynamics): value iteration or Q-learning"
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "value_iteration": dict(env="Taxi-v4", gamma=0.99, sweeps=500, lr=1.0),
        "q_learning": dict(env="Taxi-v4", gamma=0.99, lr=0.5, total_timesteps=300_000,
                           eps_fraction=0.3, eval_freq=20_000),
    }
    references: ClassVar[tuple[Reference, ...]] = (
        Reference("eval/expected_return", 7.93, "optimal policy, exact, 200-step limit (our DP)",
                  "Gymnasium's threshold 8.0 is above the optimum"),
        Reference("eval/optimality", 1.0, "exact optimum within the 200-step limit (our DP)"),
    )
