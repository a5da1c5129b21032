"""MinAtar (Young & Tian 2019): five Atari games shrunk to 10x10 grids of object channels
(Breakout, SpaceInvaders, Asterix, Freeway, Seaquest), with sticky actions (0.1) and
difficulty ramping, as the paper's results were measured. An agent learns from the
pixels in minutes on a CPU, where Atari takes hours on a GPU.

    taskzoo run minatar                          # Breakout, DQN with MinAtar's network
    taskzoo run minatar game=space_invaders
    taskzoo play minatar --from runs/minatar-... --record breakout.gif

MinAtar is GPL-3.0, an optional extra: `pip install "taskzoo[minatar]"`. The games keep
all 6 actions, as the paper's curves did. The network is the paper's
(one 3x3 convolution of 16 channels, a 128-unit layer); the frames stay bytes in the
replay buffer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal, get_args

from taskzoo.errors import ConfigError
from taskzoo.rl import envs
from taskzoo.tasks import TASKS
from taskzoo.tasks.base import Reference
from taskzoo.tasks.common.control import ControlConfig, ControlTask, EnvPackage

Game = Literal["breakout", "space_invaders", "asterix", "freeway", "seaquest"]
GAMES: tuple[str, ...] = get_args(Game)


@dataclass(frozen=True, kw_only=True)
class MinAtarConfig(ControlConfig):
    game: Game = "breakout"  # the MinAtar game
    env: str = ""  # set by game= (MinAtar/<Game>-v1); another id belongs to `taskzoo run cartpole env=...`
    algo: Literal["ppo", "dqn", "a2c"] = "dqn"  # learning algorithm (picks its tuned preset)
    model: str = ""  # network; "" = MinAtar's (minatar_qnet for dqn, minatar_actor_critic otherwise)
    hidden: tuple[int, ...] = (128,)  # widths of the layers after the convolution
    activation: Literal["tanh", "relu"] = "relu"  # hidden activation

    def validate(self) -> None:
        super().validate()
        if self.env and self.env != env_id_of(self.game):
            raise ConfigError(f"env={self.env!r}: minatar picks its environment with game= "
                              f"(one of {', '.join(GAMES)}); for another gymnasium id use "
                              f"`taskzoo run cartpole env={self.env}`")


def env_id_of(game: str) -> str:
    """MinAtar's gymnasium id of `game`: "breakout" -> MinAtar/Breakout-v1."""
    return f"MinAtar/{game.title().replace('_', '')}-v1"


@TASKS.register("minatar", aliases=("min_atar",))
class MinAtar(ControlTask):
    """Atari games in miniature (MinAtar): DQN from 10x10 pixels, the paper's network."""

    name = "minatar"
    Config = MinAtarConfig
    description = "MinAtar games from pixels (Breakout, SpaceInvaders, ...): DQN, the paper's CNN"
    weights_fields: ClassVar[tuple[str, ...]] = ("model", "algo", "game", "hidden", "activation")
    env_package: ClassVar[EnvPackage | None] = EnvPackage("minatar", "MinAtar", "GPL-3.0",
                                                          "minatar")
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        # the paper's DQN (batch 32, a 100k buffer, one update a frame, the target synced
        # every 1,000, epsilon to 0.1, 5k random frames first) with Adam in place of
        # RMSprop, 3-step double-DQN targets and lr 2.5e-4, over 300k frames (<= 20 min on 2
        # cores). Chosen on Breakout seed 100's validations (20 greedy episodes every 25k
        # frames): 11.8 at 275k frames, 8.1 with one-step targets and lr 1e-4 (8.6 at best)
        "dqn": dict(n_envs=1, lr=2.5e-4, n_step=3, double=True, buffer_size=100_000,
                    learning_starts=5_000, batch_size=32, gamma=0.99, train_freq=1,
                    gradient_steps=1, target_update=1_000, eps_fraction=0.1, eps_end=0.1,
                    total_timesteps=300_000, eval_freq=25_000, val_episodes=20,
                    eval_episodes=100, grad_clip=10.0, optimizer="adam", log_every=1_000),
        # not tuned here: a starting point (8 envs of 128 steps, an entropy bonus)
        "ppo": dict(n_envs=8, n_steps=128, batch_size=256, n_epochs=4, gamma=0.99,
                    gae_lambda=0.95, lr=5e-4, ent_coef=0.01, total_timesteps=1_000_000,
                    eval_freq=50_000, val_episodes=20, eval_episodes=100, grad_clip=0.5,
                    optimizer="adam"),
    }
    quick: ClassVar[dict[str, Any]] = {"total_timesteps": 2_000, "learning_starts": 500,
                                       "eval_freq": 1_000, "val_episodes": 2, "eval_episodes": 3,
                                       "buffer_size": 2_000}
    references: ClassVar[tuple[Reference, ...]] = (
        Reference("eval/mean_return", 7.1, "MinAtar (Young & Tian 2019), DQN on Breakout: the "
                  "README's learning_curves figure read at 0.3M frames (30 seeds); 10 by 5M",
                  "game=breakout; theirs a moving average of 100 training episodes (epsilon "
                  "0.1), ours 100 greedy evaluation episodes"),
    )

    def env_id(self) -> str:
        return env_id_of(self.cfg.game)

    def env_kwargs(self) -> dict[str, Any]:
        # all 6 actions, as the paper's curves (the -v0 ids, which gymnasium calls outdated)
        return {"use_minimal_action_set": False}

    def weights_tag(self) -> str:
        return self.cfg.game  # minatar_qnet.breakout

    def dataset_card(self) -> dict[str, Any]:
        from importlib.metadata import version

        return {"name": f"{self.env_id()}, all 6 actions, sticky actions 0.1 (minatar "
                        f"{version('minatar')})", "files": [],
                "license": "GPL-3.0 (MinAtar; the agent's weights are taskzoo's)"}

    def model_name(self, spaces: envs.Spaces) -> str:
        return self.cfg.model or ("minatar_qnet" if self.cfg.algo == "dqn"
                                  else "minatar_actor_critic")
