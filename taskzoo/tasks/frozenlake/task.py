"""FrozenLake-v1 4x4, slippery: reach the goal without falling in a hole."""

from __future__ import annotations

from typing import Any, ClassVar

from taskzoo.tasks import TASKS
from taskzoo.tasks.base import Reference
from taskzoo.tasks.common.tabular import TabularTask


@TASKS.register("frozenlake", aliases=("frozen_lake",))
class FrozenLake(TabularTask):
    """FrozenLake-v1 4x4, slippery: reach the goal without falling in a hole."""

    name = "frozenlake"
    description = "FrozenLake-v1 (slippery): value iteration or Q-learning"
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "value_iteration": dict(env="FrozenLake-v1", gamma=0.999, sweeps=2_000, lr=1.0),
        "q_learning": dict(env="FrozenLake-v1", gamma=0.999, lr=0.05, total_timesteps=400_000,
                           eps_fraction=0.5, eval_freq=20_000),
    }
    # The ceiling, not a published run: no policy can beat the optimum (test_rl checks the
    # value against value iteration), which says more than any paper's Q-learning figure.
    references: ClassVar[tuple[Reference, ...]] = (
        Reference("eval/expected_return", 0.7442, "optimal policy, exact, 100-step limit (our DP)",
                  "Gymnasium's solved threshold: 0.70"),
        Reference("eval/optimality", 1.0, "exact optimum within the 100-step limit (our DP)"),
    )
