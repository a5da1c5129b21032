"""gymnasium environments for the RL tasks: checked creation, observation encoding, a vector
runner that records its actions (so a resumed run replays them to the same state) and
deterministic evaluation episodes.

Environments stay on the CPU; only observations and actions cross to the model's device.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from taskzoo.errors import ConfigError, UnknownNameError, UsageError, did_you_mean

# pygame (rendering) prints SDL audio warnings on machines without a sound card.
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")


def _gym() -> Any:
    import gymnasium

    return gymnasium


# Packages that register environments with gymnasium (highway-env's highway-fast-v0 and the
# others, MinAtar's MinAtar/Breakout-v0, ale-py's ALE/Pong-v5), each with the function that
# registers its ids ("" when importing it does) and one id it registers: imported only when an
# id is not registered yet, and only those installed. taskzoo's own preprocessed Atari id
# (taskzoo.rl.atari) is registered with ale-py.
ATARI_ID = "taskzoo/Atari-v0"  # taskzoo.rl.atari's id, named here so `taskzoo list` needs no gymnasium
PLUGINS: tuple[tuple[str, str, str], ...] = (
    ("highway_env", "", "highway-fast-v0"),
    ("minatar", "minatar.gym:register_envs", "MinAtar/Breakout-v0"),
    ("ale_py", "taskzoo.rl.atari:register", ATARI_ID),
)


def _register_plugins() -> None:
    import importlib
    import importlib.util
    import warnings

    registry = _gym().registry
    for name, register, probe in PLUGINS:
        if probe in registry or importlib.util.find_spec(name) is None:
            continue
        with warnings.catch_warnings():  # their import-time deprecation notes
            warnings.simplefilter("ignore")
            importlib.import_module(name)
            if register:
                module, func = register.split(":")
                getattr(importlib.import_module(module), func)()


def check_env_id(env_id: str) -> Any:
    """The gymnasium EnvSpec of `env_id`; UnknownNameError with the closest id otherwise.
    An id not registered yet is looked for again once the installed PLUGINS are imported.

    >>> check_env_id("CartPole-v1").reward_threshold
    475.0
    """
    gym = _gym()
    try:
        return gym.spec(env_id)
    except gym.error.Error:
        _register_plugins()
    try:
        return gym.spec(env_id)
    except gym.error.Error as exc:
        ids = [k for k in gym.registry if "/" not in k or k.startswith("ALE/")]
        hint = did_you_mean(env_id, ids)
        raise UnknownNameError(
            f"Unknown gymnasium environment '{env_id}'.{hint} ({exc}) "
            f"Registered ids include: {', '.join(sorted(ids)[:12])}, ..."
        ) from None


def make_env(env_id: str, **kwargs: Any) -> Any:
    """gym.make with gymnasium's errors (missing extras, bad kwargs) turned into UsageError."""
    gym = _gym()
    check_env_id(env_id)
    try:
        return gym.make(env_id, **kwargs)
    except gym.error.DependencyNotInstalled as exc:
        raise UsageError(f"{env_id} needs an extra dependency: {exc}") from None
    except (gym.error.Error, TypeError) as exc:
        raise UsageError(f"Cannot create {env_id}: {exc}") from None


def make_vec_env(env_id: str, num_envs: int, **kwargs: Any) -> Any:
    """`num_envs` copies stepped in this process; an ended episode resets in the same step
    (the final observation is in info["final_obs"]), as in Stable-Baselines3. `kwargs` go
    to each environment (highway-env's `config`)."""
    gym = _gym()
    make_env(env_id, **kwargs).close()  # fail early and clearly
    return gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="sync",
                        vector_kwargs={"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP},
                        **kwargs)


@dataclass(frozen=True)
class Spaces:
    """What a model needs to know of an environment."""

    obs_shape: tuple[int, ...]  # encoded observation shape
    num_actions: int  # discrete actions, or the action vector's length
    continuous: bool  # Box actions (Gaussian policy) instead of Discrete
    num_states: int  # Discrete observation spaces only (0 otherwise)
    low: np.ndarray | None = None  # Box action bounds
    high: np.ndarray | None = None
    obs_dtype: str = "float32"  # a Box observation's numpy dtype (MinAtar's 0/1 channels: bool)


def spaces_of(env_id: str, **kwargs: Any) -> Spaces:
    gym = _gym()
    env = make_env(env_id, **kwargs)
    try:
        obs, act = env.observation_space, env.action_space
    finally:
        env.close()
    if isinstance(obs, gym.spaces.Discrete):
        obs_shape, num_states, dtype = (int(obs.n),), int(obs.n), "int64"
    elif isinstance(obs, gym.spaces.Box):
        obs_shape, num_states, dtype = tuple(obs.shape), 0, np.dtype(obs.dtype).name
    else:
        raise UsageError(f"{env_id}: observation space {obs} is not supported (Box or Discrete)")
    if isinstance(act, gym.spaces.Discrete):
        return Spaces(obs_shape, int(act.n), False, num_states, obs_dtype=dtype)
    if isinstance(act, gym.spaces.Box) and len(act.shape) == 1:
        return Spaces(obs_shape, int(act.shape[0]), True, num_states, act.low, act.high,
                      obs_dtype=dtype)
    raise UsageError(f"{env_id}: action space {act} is not supported (Discrete or 1-D Box)")


def encode_obs(obs: np.ndarray, spaces: Spaces, device: torch.device) -> torch.Tensor:
    """A batch of raw observations as model input: one-hot for Discrete, float otherwise."""
    t = torch.as_tensor(np.asarray(obs), device=device)
    if spaces.num_states and spaces.obs_shape == (spaces.num_states,):
        return torch.nn.functional.one_hot(t.long(), spaces.num_states).float()
    return t if len(spaces.obs_shape) == 3 else t.float()


def to_env_actions(actions: torch.Tensor, spaces: Spaces) -> np.ndarray:
    """Model actions to what env.step takes (continuous ones clipped to the bounds)."""
    a = actions.detach().cpu().numpy()
    if spaces.continuous:
        return np.clip(a, spaces.low, spaces.high).astype(np.float32)
    return a.astype(np.int64)


class VecRunner:
    """Steps a vector env, keeps episode statistics and every action it sent.

    The recorded actions are the env's whole state for a checkpoint: gymnasium envs are
    deterministic given their seed and actions, so `restore` rebuilds the exact state by
    replaying them, for any environment and without pickling it."""

    def __init__(self, env_id: str, num_envs: int, seed: int, **kwargs: Any) -> None:
        self.env_id, self.num_envs, self.seed = env_id, num_envs, seed
        self.env = make_vec_env(env_id, num_envs, **kwargs)
        self._start()

    def _start(self) -> None:
        self.obs, _ = self.env.reset(seed=self.seed)
        self.actions: list[np.ndarray] = []
        self.ep_return = np.zeros(self.num_envs)
        self.ep_length = np.zeros(self.num_envs, dtype=np.int64)
        self.recent = deque(maxlen=100)  # returns of the last finished training episodes
        self.episodes: list[tuple[int, float]] = []  # (env step, return) of every episode
        self.env_steps = 0

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """One vector step: (next_obs, rewards, terminated, truncated, real_next_obs).

        next_obs is what to act on next (already reset where an episode ended);
        real_next_obs holds the final observation there, for bootstrapping and replay."""
        self.actions.append(actions)
        obs, rew, term, trunc, info = self.env.step(actions)
        self.env_steps += self.num_envs
        done = term | trunc
        real_next = obs
        if done.any():
            real_next = obs.copy()
            for i in np.nonzero(done)[0]:
                real_next[i] = info["final_obs"][i]
        self.ep_return += rew
        self.ep_length += 1
        for i in np.nonzero(done)[0]:
            ret = float(self.ep_return[i])
            self.recent.append(ret)
            self.episodes.append((self.env_steps, ret))
            self.ep_return[i] = 0.0
            self.ep_length[i] = 0
        self.obs = obs
        return obs, rew.astype(np.float32), term, trunc, real_next

    def metrics(self) -> dict[str, float]:
        out = {"rollout/env_steps": float(self.env_steps)}
        if self.recent:
            out["rollout/ep_return_mean"] = float(np.mean(self.recent))
        return out

    def state_dict(self) -> dict[str, Any]:
        acts = np.stack(self.actions) if self.actions else np.zeros((0, self.num_envs))
        return {"actions": torch.from_numpy(np.ascontiguousarray(acts))}

    def restore(self, state: dict[str, Any],
                on_step: Callable[[np.ndarray, np.ndarray, tuple], None] | None = None) -> None:
        """Reset with the seed and replay the recorded actions; `on_step(obs, actions, out)`
        sees each replayed transition (a replay buffer refills itself from them)."""
        self._start()
        dtype = self.env.action_space.dtype
        for row in state["actions"].numpy():
            before = self.obs
            out = self.step(row.astype(dtype))
            if on_step is not None:
                on_step(before, row, out)


def run_episodes(act: Callable[[np.ndarray], np.ndarray], env_id: str, episodes: int,
                 seed: int, *, width: int = 32, env_kwargs: dict[str, Any] | None = None,
                 watch: tuple[str, ...] = (), stats: dict[str, np.ndarray] | None = None,
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Returns and lengths of `episodes` episodes, episode i seeded with seed + i.

    Up to `width` episodes run side by side in one vector env (one batched forward per
    step); more run in waves, so 1000 episodes do not build 1000 environments. For each
    numeric `info` key in `watch` (highway-env's "speed", "crashed"), `stats` receives its
    per-episode mean over the steps (`stats[key]`) and its value at the last step
    (`stats[key + "_last"]`)."""
    if episodes < 1:
        raise ConfigError(f"episodes={episodes}: expected at least 1")
    k = min(episodes, width)
    env = make_vec_env(env_id, k, **(env_kwargs or {}))
    returns = np.zeros(episodes)
    lengths = np.zeros(episodes, dtype=np.int64)
    sums = {key: np.zeros(episodes) for key in watch}
    lasts = {key: np.zeros(episodes) for key in watch}
    try:
        for start in range(0, episodes, k):
            # a last, partial wave still steps all k envs; only the first n count
            n = min(k, episodes - start)
            obs, _ = env.reset(seed=[seed + start + i for i in range(k)])
            ret, length = np.zeros(k), np.zeros(k, dtype=np.int64)
            running = np.ones(k, dtype=bool)
            running[n:] = False
            while running.any():
                obs, rew, term, trunc, info = env.step(act(obs))
                ret += rew * running
                length += running
                done = term | trunc
                for key in watch:
                    value = _step_values(info, key, done, k)
                    idx = np.arange(start, start + n)
                    sums[key][idx] += (value * running)[:n]
                    lasts[key][idx] = np.where(running[:n], value[:n], lasts[key][idx])
                running &= ~done
            returns[start:start + n], lengths[start:start + n] = ret[:n], length[:n]
    finally:
        env.close()
    if stats is not None:
        for key in watch:
            stats[key] = sums[key] / np.maximum(lengths, 1)
            stats[key + "_last"] = lasts[key]
    return returns, lengths


def _step_values(info: dict[str, Any], key: str, done: np.ndarray, k: int) -> np.ndarray:
    """A vector env's per-env value of info[key] for the step just taken: an env whose
    episode ended reports it in info["final_info"] (the reset's info replaced it)."""
    value = np.zeros(k)
    if key in info:
        value = np.where(info.get(f"_{key}", np.ones(k, bool)),
                         np.asarray(info[key], dtype=float), 0.0)
    final = info.get("final_info")
    if done.any() and isinstance(final, dict) and key in final:
        ended = done & np.asarray(final.get(f"_{key}", done), bool)
        value = np.where(ended, np.asarray(final[key], dtype=float), value)
    return value


def env_card(env_id: str) -> dict[str, Any]:
    """A weights card's dataset entry for an RL agent: the environment and its version."""
    import gymnasium as gym

    return {"name": f"gymnasium {env_id} (gymnasium {gym.__version__})", "files": [],
            "license": "MIT (gymnasium)"}
