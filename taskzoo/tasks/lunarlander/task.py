"""LunarLander-v3 (box2d): land between the flags; solved at 200."""

from __future__ import annotations

from typing import Any, ClassVar

from taskzoo.tasks import TASKS
from taskzoo.tasks.base import Reference
from taskzoo.tasks.common.control import ControlTask


@TASKS.register("lunarlander", aliases=("lunar_lander",))
class LunarLander(ControlTask):
    """LunarLander-v3 (box2d): land between the flags; solved at 200."""

    name = "lunarlander"
    description = "LunarLander-v3 landing (PPO, DQN or A2C; needs box2d)"
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "ppo": dict(env="LunarLander-v3", n_envs=16, n_steps=1024, batch_size=64, n_epochs=4,
                    gamma=0.999, gae_lambda=0.98, ent_coef=0.01, lr=3e-4,
                    total_timesteps=1_000_000, eval_freq=65_536, grad_clip=0.5),
        "dqn": dict(env="LunarLander-v3", n_envs=1, hidden=(256, 256), activation="relu",
                    lr=6.3e-4, batch_size=128, buffer_size=50_000, learning_starts=0,
                    target_update=250, train_freq=4, gradient_steps=4, eps_fraction=0.12,
                    eps_end=0.1, total_timesteps=100_000, eval_freq=10_000, grad_clip=10.0,
                    optimizer="adam"),
        "a2c": dict(env="LunarLander-v3", n_envs=16, n_steps=5, gamma=0.995, lr=8.3e-4,
                    ent_coef=1e-5, norm_adv=False, gae_lambda=1.0, total_timesteps=2_000_000,
                    eval_freq=50_000, grad_clip=0.5, optimizer="adam"),
    }
    references: ClassVar[tuple[Reference, ...]] = (
        Reference("eval/mean_return", 242.0, "RL Baselines3 Zoo PPO LunarLander-v2 (1e6 steps)",
                  "v2 vs our v3"),
    )
