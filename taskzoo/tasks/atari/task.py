"""Atari 2600 games through the Arcade Learning Environment (ale-py), with the standard
preprocessing (taskzoo.rl.atari: no-op starts, frame skip 4, 84x84 grey, 4 stacked frames,
a lost life ends a training episode, rewards clipped to their sign) and the Nature CNN.

    taskzoo run atari                             # Pong, PPO (CleanRL's ppo_atari recipe)
    taskzoo run atari game=breakout
    taskzoo run atari algo=dqn                    # CleanRL's dqn_atari, a 100k buffer
    taskzoo play atari --from runs/atari-... --record pong.gif

Training sees lives and clipped rewards; validation and the final evaluation play whole
games and add the game's own points (`eval/mean_return` is Pong's score difference,
Breakout's bricks). The recipe is a GPU job: 10M steps, hours on one GPU; a CPU runs the
smoke (`bench --quick`). ale-py is GPL-2.0, an optional extra: `pip install "taskzoo[atari]"`.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from taskzoo.config import NonNegativeInt
from taskzoo.errors import ConfigError
from taskzoo.rl import envs
from taskzoo.tasks import TASKS
from taskzoo.tasks.base import Reference
from taskzoo.tasks.common.control import ControlConfig, ControlTask, EnvPackage

# taskzoo.rl.atari imports gymnasium, which `taskzoo list` must not: it is imported where used
ENV_ID = envs.ATARI_ID

CLEANRL_PPO = "https://docs.cleanrl.dev/rl-algorithms/ppo/#ppo_ataripy"
CLEANRL_DQN = "https://docs.cleanrl.dev/rl-algorithms/dqn/#dqn_ataripy"


@dataclass(frozen=True, kw_only=True)
class AtariConfig(ControlConfig):
    game: str = "pong"  # the ALE game in lower_snake: pong, breakout, space_invaders, ...
    env: str = ""  # set by game= (taskzoo/Atari-v0); another id belongs to `taskzoo run cartpole env=...`
    algo: Literal["ppo", "dqn", "a2c"] = "ppo"  # learning algorithm (picks its tuned preset)
    model: str = ""  # network; "" = the Nature CNN (cnn_actor_critic, or cnn_qnet for dqn)
    hidden: tuple[int, ...] = ()  # layers between the CNN's 512 features and the heads (none: Nature's)
    activation: Literal["tanh", "relu"] = "relu"  # hidden activation
    device: str = "auto"  # auto (cuda > mps > cpu): the CNN's updates are the cost, a GPU pays
    threads: NonNegativeInt = 0  # CPU threads for torch; 0 keeps the caller's (the CNN uses them)

    def validate(self) -> None:
        super().validate()
        if importlib.util.find_spec("ale_py") is not None:
            from taskzoo.rl import atari

            atari.ale_id(self.game)  # UnknownNameError with the closest game
        if self.env and self.env != ENV_ID:
            raise ConfigError(f"env={self.env!r}: atari picks its game with game= (pong, "
                              f"breakout, ...); for another gymnasium id use "
                              f"`taskzoo run cartpole env={self.env}`")


@TASKS.register("atari", aliases=("ale", "atari_games"))
class Atari(ControlTask):
    """Atari games from pixels (ale-py): PPO with the Nature CNN, CleanRL's recipe."""

    name = "atari"
    Config = AtariConfig
    description = "Atari games from pixels (Pong, Breakout, ...): PPO or DQN, the Nature CNN"
    weights_fields: ClassVar[tuple[str, ...]] = ("model", "algo", "game", "hidden", "activation")
    env_package: ClassVar[EnvPackage | None] = EnvPackage("ale_py", "ale-py", "GPL-2.0", "atari")
    gpu_recipe: ClassVar[bool] = True  # 10M steps: about 8 h on 2 CPU cores
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        # CleanRL's ppo_atari.py: 8 envs x 128 steps, 4 epochs of 4 minibatches (256), lr
        # 2.5e-4 annealed to 0, clip 0.1 for the policy and the value. CleanRL weighs
        # 0.5 * its squared value error by vf_coef 0.5; our value loss is the plain mean
        # squared error, so 0.25 is the same weight.
        "ppo": dict(n_envs=8, n_steps=128, batch_size=256, n_epochs=4, lr=2.5e-4,
                    schedule="linear", optimizer="adam", gamma=0.99, gae_lambda=0.95,
                    clip_range=0.1, clip_value=0.1, ent_coef=0.01, vf_coef=0.25, grad_clip=0.5,
                    total_timesteps=10_000_000, eval_freq=500_000, val_episodes=8,
                    eval_episodes=30),
        # CleanRL's dqn_atari.py with a 100k-transition buffer (RL Zoo's Atari DQN size) in
        # place of its 1M: the buffer keeps observation and next observation as uint8
        # 84x84x4 frames, 56 KB a transition, so 1M would take ~56 GB and 100k ~5.6 GB.
        # Its target sync every 1,000 env steps is every 250 of our optimizer steps (one per
        # 4 env steps); Huber loss and a gradient norm of 10 as SB3's DQN.
        "dqn": dict(n_envs=1, lr=1e-4, optimizer="adam", buffer_size=100_000,
                    learning_starts=80_000, batch_size=32, gamma=0.99, train_freq=4,
                    gradient_steps=1, target_update=250, eps_start=1.0, eps_end=0.01,
                    eps_fraction=0.1, grad_clip=10.0, total_timesteps=10_000_000,
                    eval_freq=500_000, val_episodes=8, eval_episodes=30, log_every=1_000),
        "a2c": dict(n_envs=16, n_steps=5, lr=7e-4, optimizer="adam", gamma=0.99,
                    gae_lambda=1.0, ent_coef=0.01, vf_coef=0.25, grad_clip=0.5,
                    total_timesteps=10_000_000, eval_freq=500_000, val_episodes=8,
                    eval_episodes=30),
    }
    # a CPU smoke: two PPO rollouts (16 updates) or 1.5k DQN updates-worth of steps, and
    # whole games for evaluation (an untrained Pong agent loses 21-0 in ~800 steps)
    quick: ClassVar[dict[str, Any]] = {"total_timesteps": 2_048, "learning_starts": 512,
                                       "buffer_size": 2_048, "eval_freq": 1_024,
                                       "val_episodes": 1, "eval_episodes": 2}
    references: ClassVar[tuple[Reference, ...]] = (
        Reference("eval/mean_return", 20.36, f"CleanRL ppo_atari.py, PongNoFrameskip-v4, 10M "
                  f"steps, 3 seeds ({CLEANRL_PPO}); Breakout 414.66",
                  "game=pong; their figure is the return of the training games (sampled "
                  "actions), ours of 30 greedy evaluation games", dataset="ppo"),
        Reference("eval/mean_return", 20.25, f"CleanRL dqn_atari.py, PongNoFrameskip-v4, 10M "
                  f"steps, 3 seeds ({CLEANRL_DQN}); Breakout 366.93",
                  "game=pong; theirs with a 1M buffer, ours 100k", dataset="dqn"),
    )

    def env_id(self) -> str:
        return ENV_ID

    def env_kwargs(self) -> dict[str, Any]:
        # training: make_atari's defaults, a lost life ends the episode, rewards clipped
        return {"game": self.cfg.game}

    def eval_env_kwargs(self) -> dict[str, Any] | None:
        # whole games with the game's own points: the figure papers report
        return {"game": self.cfg.game, "episodic_life": False, "clip_rewards": False}

    def weights_tag(self) -> str:
        return f"atari_{self.cfg.game}"

    def dataset_card(self) -> dict[str, Any]:
        import ale_py

        from taskzoo.rl import atari

        return {"name": f"ALE {atari.ale_id(self.cfg.game)} (ale-py {ale_py.__version__}), "
                        f"taskzoo's Atari preprocessing", "files": [],
                "license": "GPL-2.0 (ale-py and its bundled ROMs)"}
