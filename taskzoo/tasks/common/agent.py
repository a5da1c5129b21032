"""The predictor of every gymnasium task (control and tabular): observations in, greedy actions
out; `act` steps an environment with numpy arrays."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from taskzoo.errors import InputError
from taskzoo.rl import envs
from taskzoo.rl.play import Playable
from taskzoo.runtime import Runtime
from taskzoo.tasks.base import Predictor


def greedy_policy(model: nn.Module, spaces: envs.Spaces):
    """numpy observations -> numpy greedy actions of `model` (what `taskzoo play` steps with)."""
    dev = next(model.parameters()).device

    @torch.no_grad()
    def act(obs: np.ndarray) -> np.ndarray:
        return envs.to_env_actions(model.act(envs.encode_obs(obs, spaces, dev),
                                             deterministic=True), spaces)
    return act


class Agent(Predictor, Playable):
    """A trained policy: observations -> greedy actions (a list, also for one observation);
    Playable, so `taskzoo play` steps its environment with `act`.

    >>> agent = taskzoo.load_run("runs/cartpole")   # doctest: +SKIP
    >>> agent([[0.0, 0.1, 0.02, -0.3]])             # doctest: +SKIP
    [1]
    """

    serve_input: ClassVar[str] = "observation"  # a JSON array (a number for a state)

    def __init__(self, model: nn.Module, spaces: envs.Spaces, env_id: str,
                 runtime: Runtime | None = None, *,
                 env_kwargs: dict[str, Any] | None = None) -> None:
        runtime = runtime or Runtime(device=next(model.parameters()).device)
        super().__init__(model, runtime, batch_size=4096)
        self.spaces, self.env_id = spaces, env_id
        self.env_kwargs = dict(env_kwargs or {})  # gym.make's keywords: `taskzoo play` uses them
        self.act = greedy_policy(model, spaces)  # numpy in, numpy out: what `taskzoo play` steps with

    def _expects(self) -> str:
        if self.spaces.num_states:
            return f"a state number 0..{self.spaces.num_states - 1} (e.g. 0)"
        shape = self.spaces.obs_shape
        if len(shape) == 1:
            example = "[" + ",".join(["0.0"] * shape[0]) + "]"
            return f"a JSON array of {shape[0]} numbers (e.g. {example})"
        return f"a JSON array of shape {shape}"

    def parse_cli(self, args: Sequence[str]) -> list[Any]:
        """Each argument is one observation: a JSON array (a number for a tabular state)."""
        out = []
        for i, text in enumerate(args):
            try:
                out.append(json.loads(text))
            except json.JSONDecodeError:
                raise InputError(f"input {i + 1} {text!r} is not JSON: {self.env_id} takes "
                                 f"{self._expects()}") from None
        return out

    def items(self, inputs: Any, **options: Any) -> tuple[list[Any], bool]:
        if isinstance(inputs, str):
            inputs = self.parse_cli([inputs])[0]
        not_obs = InputError(f"{self.env_id} takes {self._expects()} per observation; got "
                             f"{str(inputs)[:80]}")
        # true/false are neither state numbers nor observation values, though numpy would
        # read them as 1 and 0 (except where the env observes booleans: MinAtar's channels)
        if self.spaces.obs_dtype != "bool" and _holds_bool(inputs):
            raise not_obs
        try:
            obs = np.asarray(inputs, dtype=np.float64)
        except (TypeError, ValueError):
            raise not_obs from None
        want = () if self.spaces.num_states else self.spaces.obs_shape
        if obs.shape == want:
            obs = obs[None]
        if obs.ndim == 0 or obs.shape[1:] != want:
            raise InputError(f"{self.env_id} observations have shape {want}, {self._expects()}; "
                             f"got shape {obs.shape if obs.ndim == 0 else obs.shape[1:]}")
        if not len(obs):
            raise InputError("expected at least one observation, got an empty list")
        if not np.isfinite(obs).all():
            raise InputError(f"{self.env_id} observations must be finite numbers")
        if self.spaces.num_states and ((obs != np.round(obs)).any() or obs.min() < 0
                                       or obs.max() >= self.spaces.num_states):
            raise InputError(f"{self.env_id} takes {self._expects()}")
        # one observation still gives a list of one action: the policy's natural output
        return list(obs.astype(np.int64 if self.spaces.num_states else np.float32)), False

    def preprocess(self, item: np.ndarray, index: int, ctx: dict[str, Any]) -> np.ndarray:
        return item

    def collate(self, examples: list[np.ndarray], ctx: dict[str, Any]) -> torch.Tensor:
        return envs.encode_obs(np.stack(examples), self.spaces, torch.device("cpu"))

    def forward(self, batch: torch.Tensor, ctx: dict[str, Any]) -> list[Any]:
        return envs.to_env_actions(self.model.act(batch, deterministic=True), self.spaces).tolist()


def _holds_bool(value: Any) -> bool:
    """Whether `value` is a bool or holds one (JSON true/false, a numpy or torch bool array)."""
    if isinstance(value, (bool, np.bool_)):
        return True
    if isinstance(value, np.ndarray):
        return value.dtype == np.bool_
    if isinstance(value, torch.Tensor):
        return value.dtype == torch.bool
    if isinstance(value, (list, tuple)):
        return any(_holds_bool(v) for v in value)
    return False
