"""Driving (highway-env, Leurent 2018): the ego car keeps its lane, changes lanes, speeds up
or slows down among traffic; rewarded for speed and the right lane, an episode ends at a
crash or after its duration.

    taskzoo run highway                                  # highway-fast-v0, DQN (the docs' recipe)
    taskzoo run highway env=merge-v0                     # any highway-env id
    taskzoo run highway env_config='{"lanes_count": 3}'  # its config keys, as JSON
    taskzoo play highway --from runs/highway-... --record highway.gif

The recipe is highway-env's documented Stable-Baselines3 DQN (an MLP of 256x256, lr 5e-4,
a 15k-transition buffer, gamma 0.8, the target synced every 50 steps, exploration over 70 %
of 2e4 steps). Beside `eval/mean_return` the evaluation reports `eval/crash_rate` (episodes
that end in a crash), `eval/mean_speed` (m/s over the steps) and `eval/mean_length` (steps).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from taskzoo.errors import ConfigError
from taskzoo.tasks import TASKS
from taskzoo.tasks.base import Reference
from taskzoo.tasks.common.control import ControlConfig, ControlTask


@dataclass(frozen=True, kw_only=True)
class HighwayConfig(ControlConfig):
    env: str = "highway-fast-v0"  # a highway-env id: highway(-fast), merge, roundabout, intersection, ...
    algo: Literal["ppo", "dqn", "a2c"] = "dqn"  # learning algorithm (picks its tuned preset)
    env_config: str = ""  # highway-env config keys as a JSON object, e.g. {"lanes_count": 3}

    def validate(self) -> None:
        super().validate()
        config_of(self.env_config)


def config_of(text: str) -> dict[str, Any]:
    """`env_config`'s JSON object; ConfigError saying what is wrong otherwise."""
    if not text.strip():
        return {}
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"env_config={text!r} is not JSON ({exc}); expected an object of "
                          'highway-env config keys, e.g. {"lanes_count": 3}') from None
    if not isinstance(value, dict):
        raise ConfigError(f"env_config={text!r}: expected a JSON object of config keys, e.g. "
                          '{"lanes_count": 3}')
    return value


@TASKS.register("highway", aliases=("driving", "highway_env"))
class Highway(ControlTask):
    """Driving among traffic (highway-env); crash rate and speed beside the return."""

    name = "highway"
    Config = HighwayConfig
    description = "drive among traffic (highway-env): DQN; crash rate and speed beside the return"
    episode_info: ClassVar[tuple[tuple[str, str, str], ...]] = (
        ("crashed", "last", "crash_rate"), ("speed", "mean", "mean_speed"))
    weights_fields: ClassVar[tuple[str, ...]] = ("model", "algo", "env", "hidden", "activation",
                                                 "env_config")
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        # highway-env's documentation (scripts/sb3_highway_dqn.py): SB3 DQN on highway-fast-v0
        "dqn": dict(env="highway-fast-v0", n_envs=1, hidden=(256, 256), activation="relu",
                    lr=5e-4, buffer_size=15_000, learning_starts=200, batch_size=32, gamma=0.8,
                    train_freq=1, gradient_steps=1, target_update=50, eps_fraction=0.7,
                    eps_end=0.05, total_timesteps=20_000, eval_freq=2_000, val_episodes=10,
                    eval_episodes=50, grad_clip=10.0, optimizer="adam"),
        "ppo": dict(env="highway-fast-v0", n_envs=8, n_steps=64, batch_size=64, n_epochs=10,
                    gamma=0.8, lr=5e-4, hidden=(256, 256), activation="relu",
                    total_timesteps=20_000, eval_freq=4_096, val_episodes=10, eval_episodes=50),
    }
    quick: ClassVar[dict[str, Any]] = {"total_timesteps": 600, "learning_starts": 100,
                                       "eval_freq": 300, "val_episodes": 2, "eval_episodes": 3}
    references: ClassVar[tuple[Reference, ...]] = (
        Reference("eval/mean_return", 19.0, "highway-env docs: SB3 DQN, 2e4 steps on "
                  "highway-fast-v0 (episode returns of about 18-21 at the end of training)",
                  "read off the docs' training curve, not an evaluation on fixed seeds"),
    )

    def env_kwargs(self) -> dict[str, Any]:
        config = config_of(self.cfg.env_config)
        return {"config": config} if config else {}
