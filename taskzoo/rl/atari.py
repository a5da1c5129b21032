"""Atari through ale-py with the standard preprocessing of the DQN/PPO literature (Mnih et al.
2015; Machado et al. 2018 for the names), as one gymnasium id, ENV_ID:

    gym.make("taskzoo/Atari-v0", game="breakout")                  # training: lives, clipped
    gym.make("taskzoo/Atari-v0", game="breakout", episodic_life=False, clip_rewards=False)

| step                                     | by                                             |
| ---------------------------------------- | ---------------------------------------------- |
| 1-30 random no-ops after a reset         | gymnasium AtariPreprocessing                   |
| frame skip 4, max of the last two frames | gymnasium AtariPreprocessing (ALE frameskip=1) |
| greyscale, 84x84 (INTER_AREA)            | gymnasium AtariPreprocessing                   |
| a lost life ends the training episode    | EpisodicLife (here)                            |
| FIRE after a reset (Breakout, Pong)      | FireReset (here)                               |
| rewards to their sign                    | gymnasium TransformReward(sign)                |
| the last 4 frames stacked                | gymnasium FrameStackObservation                |
| (84, 84, 4) uint8, channels last         | ChannelsLast (here): the zoo's image layout    |

gymnasium has no episodic-life or fire-on-reset wrapper (its AtariPreprocessing's
`terminal_on_life_loss` ends the *game* at a lost life, so the next reset starts over from
the first life and the later lives are never seen), hence the two small wrappers here, with
the semantics of Stable-Baselines3's and CleanRL's EpisodicLifeEnv and FireResetEnv.

ale-py is GPL-2.0 and an optional extra: `pip install "taskzoo[atari]"`.
"""

from __future__ import annotations

import functools
from typing import Any

import gymnasium as gym
import numpy as np

from taskzoo.errors import UnknownNameError, UsageError, did_you_mean
from taskzoo.rl.envs import ATARI_ID

ENV_ID = ATARI_ID
EXTRA = 'pip install "taskzoo[atari]"'


def register() -> None:
    """Register ENV_ID with gymnasium (called by envs once ale-py is found)."""
    if ENV_ID not in gym.registry:
        gym.register(ENV_ID, entry_point="taskzoo.rl.atari:make_atari")


def _require() -> None:
    """ale-py (which registers the ALE/ ids) and OpenCV (AtariPreprocessing's resize), or a
    UsageError naming the extra."""
    try:
        import ale_py
        import cv2  # noqa: F401
    except ImportError as exc:
        raise UsageError(f"Atari needs ale-py and OpenCV (GPL-2.0 ale-py, an optional extra; "
                         f"missing {exc.name}): {EXTRA}") from None
    gym.register_envs(ale_py)


@functools.cache
def games() -> dict[str, str]:
    """Every single-player ALE game: lower_snake name -> its gymnasium id ("pong" ->
    "ALE/Pong-v5"); the ROMs ship in ale-py's wheel."""
    _require()
    from ale_py import roms

    out = {}
    for game in roms.get_all_rom_ids():
        env_id = ale_name(game)
        if env_id in gym.registry:  # the multi-player ROMs (combat, joust, ...) have none
            out[game] = env_id
    return out


def ale_name(game: str) -> str:
    """ale-py's gymnasium id for a ROM name (registered only for the single-player games).

    >>> ale_name("space_invaders")
    'ALE/SpaceInvaders-v5'
    """
    return "ALE/" + "".join(w.capitalize() for w in game.split("_")) + "-v5"


def ale_id(game: str) -> str:
    """The ALE id of an installed single-player `game`; UnknownNameError with the closest
    game otherwise."""
    known = games()
    key = str(game).strip().lower().replace("-", "_")
    if key not in known:
        raise UnknownNameError(f"Unknown Atari game {game!r}.{did_you_mean(key, known)} "
                               f"ALE has {len(known)} games, e.g. pong, breakout, "
                               f"space_invaders, seaquest, qbert, ms_pacman")
    return known[key]


def make_atari(game: str = "pong", *, noop_max: int = 30, frame_skip: int = 4,
               screen_size: int = 84, stack: int = 4, episodic_life: bool = True,
               clip_rewards: bool = True, fire_reset: bool = True,
               repeat_action_probability: float = 0.0, full_action_space: bool = False,
               max_frames: int = 108_000, render_mode: str | None = None) -> Any:
    """An ALE game with the standard preprocessing: observations (screen_size, screen_size,
    stack) uint8, channels last; Discrete actions (the game's minimal set unless
    `full_action_space`).

    repeat_action_probability=0: no sticky actions, the setting of the NoFrameskip-v4 ids that
    CleanRL's and SB3's published Atari figures were measured on (v5's default, 0.25, is
    Machado et al.'s harder protocol; pass it to compare with v5 results).
    max_frames caps a whole game in emulator frames (108,000 = 30 minutes at 60 Hz = 27,000
    agent steps), as the ALE counts them: a truncation, not a termination. (Not
    `max_episode_steps`: gym.make takes that keyword itself and would add a TimeLimit that
    restarts at every lost life.)
    episodic_life: a lost life ends the episode, but the next reset continues the game unless
    it was really over (DeepMind's trick for value estimation); off for evaluation.
    fire_reset: press FIRE (then action 2, as SB3) after a reset in games whose action 1 is
    FIRE, since Breakout waits for it before it serves; without episodic_life also after
    each lost life, so a whole-game evaluation does not stall on a ball never served.
    """
    _require()
    from gymnasium.wrappers import AtariPreprocessing, FrameStackObservation, TransformReward

    env = gym.make(ale_id(game), frameskip=1, repeat_action_probability=repeat_action_probability,
                   full_action_space=full_action_space, max_num_frames_per_episode=max_frames,
                   render_mode=render_mode, disable_env_checker=True)
    env = AtariPreprocessing(env, noop_max=noop_max, frame_skip=frame_skip,
                             screen_size=screen_size, terminal_on_life_loss=False,
                             grayscale_obs=True, scale_obs=False)
    if episodic_life:
        env = EpisodicLife(env)
    if fire_reset and needs_fire(env):
        env = FireReset(env, after_life_loss=not episodic_life)
    if clip_rewards:
        env = TransformReward(env, sign)
    env = FrameStackObservation(env, stack)
    return ChannelsLast(env)


def sign(reward: Any) -> float:
    """A reward clipped to its sign (-1, 0, 1): DQN's clipping, one scale for every game."""
    return float(np.sign(reward))


def needs_fire(env: Any) -> bool:
    """Whether the game's action 1 is FIRE (SB3's FireResetEnv's own condition)."""
    meanings = env.unwrapped.get_action_meanings()
    return len(meanings) >= 3 and meanings[1] == "FIRE"


def _lives(env: Any) -> int:
    return int(env.unwrapped.ale.lives())


class EpisodicLife(gym.Wrapper):
    """A lost life ends the episode (terminated); reset then continues the same game with one
    no-op step, unless the game was really over (or a seed asks for a fresh start: a
    resumed run replays from a seeded reset and must get the same first frame)."""

    def __init__(self, env: Any) -> None:
        super().__init__(env)
        self.lives, self.game_over = 0, True

    def step(self, action: Any) -> tuple:
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.game_over = bool(terminated or truncated)
        lives = _lives(self.env)
        # lives > 0: some games (Qbert) sit at 0 lives for a few frames before the game ends
        if 0 < lives < self.lives:
            terminated = True
        self.lives = lives
        return obs, reward, terminated, truncated, info

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple:
        if self.game_over or seed is not None:
            obs, info = self.env.reset(seed=seed, options=options)
        else:
            obs, _, terminated, truncated, info = self.env.step(0)
            if terminated or truncated:  # the no-op itself ended the game
                obs, info = self.env.reset(options=options)
        self.game_over = False
        self.lives = _lives(self.env)
        return obs, info


class FireReset(gym.Wrapper):
    """FIRE, then action 2, after each reset; with `after_life_loss`, FIRE after each lost
    life too (the training episodes of episodic life get it from the reset)."""

    def __init__(self, env: Any, *, after_life_loss: bool = False) -> None:
        super().__init__(env)
        self.after_life_loss, self.lives = after_life_loss, 0

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple:
        obs, info = self.env.reset(seed=seed, options=options)
        for action in (1, 2):
            obs, _, terminated, truncated, info = self.env.step(action)
            if terminated or truncated:
                obs, info = self.env.reset(options=options)
        self.lives = _lives(self.env)
        return obs, info

    def step(self, action: Any) -> tuple:
        obs, reward, terminated, truncated, info = self.env.step(action)
        lives = _lives(self.env)
        if self.after_life_loss and lives < self.lives and not (terminated or truncated):
            obs, more, terminated, truncated, info = self.env.step(1)
            reward += more
            lives = _lives(self.env)
        self.lives = lives
        return obs, reward, terminated, truncated, info


class ChannelsLast(gym.Wrapper):
    """FrameStackObservation's (stack, H, W) as (H, W, stack): the zoo's image layout (the
    replay buffer, NatureCNN and `taskzoo play` all take HxWxC)."""

    def __init__(self, env: Any) -> None:
        super().__init__(env)
        c, h, w = env.observation_space.shape
        self.observation_space = gym.spaces.Box(0, 255, (h, w, c), np.uint8)

    @staticmethod
    def _last(obs: Any) -> np.ndarray:
        return np.ascontiguousarray(np.moveaxis(np.asarray(obs), 0, -1))

    def reset(self, **kwargs: Any) -> tuple:
        obs, info = self.env.reset(**kwargs)
        return self._last(obs), info

    def step(self, action: Any) -> tuple:
        obs, reward, terminated, truncated, info = self.env.step(action)
        return self._last(obs), reward, terminated, truncated, info
