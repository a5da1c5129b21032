"""Acrobot-v1: swing the tip above the bar; solved at -100."""

from __future__ import annotations

from typing import Any, ClassVar

from taskzoo.tasks import TASKS
from taskzoo.tasks.base import Reference
from taskzoo.tasks.common.control import ControlTask


@TASKS.register("acrobot")
class Acrobot(ControlTask):
    """Acrobot-v1: swing the tip above the bar; solved at -100."""

    name = "acrobot"
    description = "Acrobot-v1 swing-up (PPO, DQN or A2C)"
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "ppo": dict(env="Acrobot-v1", n_envs=16, n_steps=256, batch_size=256, n_epochs=4,
                    gamma=0.99, gae_lambda=0.94, lr=1e-3, total_timesteps=200_000,
                    eval_freq=16_384, grad_clip=0.5),
        "dqn": dict(env="Acrobot-v1", n_envs=1, hidden=(256, 256), activation="relu",
                    lr=6.3e-4, batch_size=128, buffer_size=50_000, learning_starts=0,
                    target_update=250, train_freq=4, gradient_steps=4, eps_fraction=0.12,
                    eps_end=0.1, total_timesteps=100_000, eval_freq=10_000, grad_clip=10.0,
                    optimizer="adam"),
        "a2c": dict(env="Acrobot-v1", n_envs=16, n_steps=5, lr=7e-4, ent_coef=0.0,
                    norm_adv=False, gae_lambda=1.0, total_timesteps=500_000, eval_freq=20_000,
                    grad_clip=0.5, optimizer="adam"),
    }
    references: ClassVar[tuple[Reference, ...]] = (
        Reference("eval/mean_return", -73.5, "RL Baselines3 Zoo PPO Acrobot-v1 (1e6 steps)"),
    )
