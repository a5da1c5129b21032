"""Finite MDPs solved exactly: value iteration and tabular Q-learning on FrozenLake and Taxi.

    taskzoo run frozenlake                      # value iteration on the known model
    taskzoo run frozenlake algo=q_learning      # learns from episodes instead
    taskzoo run taxi algo=q_learning seed=1

Both go through the common Trainer. Each is plain SGD on a float64 Q-table
(models/policy.py QTable) with a stopped-gradient Bellman target:
- value iteration: loss 0.5 * sum (Q - T Q)^2 over all (s, a), SGD with lr = 1, so every
  optimizer step is exactly one synchronous Bellman optimality sweep Q <- T Q;
- Q-learning: loss 0.5 * (Q[s, a] - (r + gamma max Q[s']))^2 of one transition, SGD with
  lr = alpha, which is exactly Q[s, a] += alpha * (target - Q[s, a]). After each vector step
  the n_envs new transitions are applied one by one in environment order, each target read
  from the table the previous update left: the textbook update on the interleaved stream,
  also when two environments share a (s, a) in one step.

Policies are judged exactly as well as by episodes: the expected return within the env's
time limit, from its initial-state distribution, next to the optimum of that same
quantity (finite-horizon dynamic programming).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal

import torch
from torch import nn

from taskzoo.config import PositiveFraction, PositiveInt, Probability, Range, TrainConfig
from taskzoo.errors import ConfigError, UsageError
from taskzoo.models import build
from taskzoo.rl import envs
from taskzoo.rl.report import learning_curve_png, solved_summary
from taskzoo.rl.sources import MDPSource, ReplaySource
from taskzoo.runtime import rank_seed
from taskzoo.tasks.base import DataBundle, Task
from taskzoo.tasks.common.agent import Agent
from taskzoo.tasks.common.control import episode_metrics
from taskzoo.train.types import BatchSource, FitResult, StepOutput


@dataclass(frozen=True, kw_only=True)
class TabularConfig(TrainConfig):
    """A tabular recipe; the defaults are FrozenLake value iteration."""

    env: str = "FrozenLake-v1"  # a gymnasium toy-text id (its model env.unwrapped.P is used)
    algo: Literal["value_iteration", "q_learning"] = "value_iteration"  # solver
    gamma: PositiveFraction = 0.99  # discount of the Bellman backups
    sweeps: PositiveInt = 1_000  # value_iteration: Bellman sweeps (optimizer steps)
    total_timesteps: Annotated[int, Range(1, 10**10)] = 200_000  # q_learning: environment steps
    n_envs: Annotated[int, Range(1, 1024)] = 16  # q_learning: environments stepped side by side
    eps_start: Probability = 1.0  # q_learning: initial exploration rate
    eps_end: Probability = 0.05  # q_learning: final exploration rate
    eps_fraction: Probability = 0.5  # q_learning: share of training over which epsilon decays
    eval_freq: PositiveInt = 10_000  # q_learning: env steps between validations (value_iteration: 100 sweeps)
    val_episodes: PositiveInt = 20  # episodes per validation (the exact expected return is the monitor)
    eval_episodes: PositiveInt = 1_000  # final episodes: 20 would leave +-0.1 noise on a success rate
    solved_return: float | None = None  # "solved" threshold; None = the env's own
    optimizer: Literal["adamw", "adam", "sgd"] = "sgd"  # plain SGD is what makes the updates exact
    momentum: float = 0.0  # must stay 0 for the exact updates
    lr: PositiveFraction = 1.0  # value_iteration: 1 = full backups; q_learning: step size alpha
    device: str = "cpu"  # tables this small gain nothing from a GPU
    threads: int = 1  # tiny tensors: one thread skips OpenMP's fork/join on every op
    keep: Literal["best", "last"] = "last"  # the final table (validation is exact, not sampled)
    log_every: int = 100  # optimizer steps between train/ records

    def validate(self) -> None:
        super().validate()
        if self.optimizer != "sgd" or self.momentum != 0 or self.weight_decay != 0:
            raise ConfigError("tabular solvers need optimizer=sgd, momentum=0, weight_decay=0 "
                              "(that is what makes each step an exact Bellman/Q-learning update)")


@dataclass
class MDPData(DataBundle):
    env_id: str = ""
    spaces: envs.Spaces | None = None
    mdp: MDPSource | None = None  # the model as tensors (also used for exact evaluation)
    isd: torch.Tensor | None = None  # initial-state distribution
    horizon: int = 0  # the env's time limit
    threshold: float | None = None
    optimal: float = 0.0  # best achievable expected return within the horizon


def mdp_data(env_id: str, sweeps: int, threshold: float | None) -> MDPData:
    """A toy-text environment's known model (env.unwrapped.P) as tensors, with its time limit,
    its solved threshold and the exact optimum of the expected return within that limit."""
    spec = envs.check_env_id(env_id)
    env = envs.make_env(env_id)
    try:
        P = getattr(env.unwrapped, "P", None)
        isd = getattr(env.unwrapped, "initial_state_distrib", None)
        if P is None or isd is None:
            raise UsageError(f"{env_id} exposes no model (env.unwrapped.P): tabular tasks need a "
                             "toy-text environment such as FrozenLake-v1, Taxi-v4 or CliffWalking-v1")
        mdp = MDPSource(P, sweeps=sweeps)
    finally:
        env.close()
    horizon = spec.max_episode_steps or 1_000
    isd_t = torch.as_tensor(isd, dtype=torch.float64)
    data = MDPData(train=None, env_id=env_id, spaces=envs.spaces_of(env_id), mdp=mdp, isd=isd_t,
                   horizon=horizon,
                   threshold=spec.reward_threshold if threshold is None else threshold)
    data.optimal = optimal_return(mdp, isd_t, horizon)
    if threshold is None and data.threshold is not None and data.threshold > data.optimal:
        # Taxi registers 8, above the best expected return its 200-step limit allows (7.93),
        # so no policy could ever count as solved: use 99 % of the exact optimum instead.
        data.threshold = round(0.99 * data.optimal, 4)
    return data


def bellman(mdp: MDPSource, v_next: torch.Tensor, gamma: float = 1.0) -> torch.Tensor:
    """Q[s, a] = sum_k p (r + gamma (1 - done) v_next[s'])."""
    return (mdp.prob * (mdp.rew + gamma * (1 - mdp.done) * v_next[mdp.next])).sum(-1)


def optimal_return(mdp: MDPSource, isd: torch.Tensor, horizon: int) -> float:
    """The best expected undiscounted return within `horizon` steps (backward induction)."""
    v = torch.zeros(mdp.prob.shape[0], dtype=torch.float64)
    for _ in range(horizon):
        v = bellman(mdp, v).max(-1).values
    return float(isd @ v)


def expected_return(mdp: MDPSource, isd: torch.Tensor, horizon: int, policy: torch.Tensor) -> float:
    """The exact expected undiscounted return of a deterministic policy within `horizon`."""
    v = torch.zeros(mdp.prob.shape[0], dtype=torch.float64)
    rows = torch.arange(len(policy))
    for _ in range(horizon):
        v = bellman(mdp, v)[rows, policy]
    return float(isd @ v)


class TabularTask(Task[TabularConfig]):
    Config = TabularConfig
    monitor: ClassVar[str] = "val/expected_return"
    eval_splits: ClassVar[tuple[str, ...]] = ("val",)
    final_splits: ClassVar[tuple[str, ...]] = ("eval",)
    preset_key: ClassVar[str] = "algo"
    # the environment fixes the table's states and actions, the solver how it was filled
    weights_fields: ClassVar[tuple[str, ...]] = ("algo", "env")

    def weights_tag(self) -> str:
        return str(self.cfg.env or self.name)

    def build_data(self, state: dict[str, Any] | None = None) -> MDPData:
        data = mdp_data(self.cfg.env, self.cfg.sweeps, self.cfg.solved_return)
        self._threshold = data.threshold
        return data

    def build_model(self, data: MDPData) -> nn.Module:
        if not data.spaces.num_states or data.spaces.continuous:
            raise UsageError(f"{data.env_id}: tabular solvers need discrete states and actions")
        return build("q_table", num_states=data.spaces.num_states,
                     num_actions=data.spaces.num_actions)

    def batches(self, data: MDPData, model: nn.Module) -> BatchSource:
        c = self.cfg
        if c.algo == "value_iteration":
            self.source = data.mdp
            return self.source
        rank, world = self.runtime.shard
        seed = rank_seed(c.seed, rank)
        runner = envs.VecRunner(c.env, c.n_envs, seed)
        # fresh: one exact Q-learning update per new transition, in environment order
        self.source = ReplaySource(
            runner, model, data.spaces, buffer_size=c.n_envs, batch_size=1,
            learning_starts=0, train_freq=1, gradient_steps=c.n_envs, gamma=c.gamma,
            target_update=0, double=False, eps_start=c.eps_start, eps_end=c.eps_end,
            eps_fraction=c.eps_fraction, total_timesteps=c.total_timesteps, seed=seed,
            fresh=True, eval_freq=c.eval_freq, shard=(rank, world))
        return self.source

    def train_config(self, source: BatchSource) -> TrainConfig:
        if self.cfg.algo == "q_learning":
            return self.cfg  # the source validates every eval_freq environment steps
        return dataclasses.replace(self.cfg, eval_every=self.cfg.eval_every or 100)

    def step(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> StepOutput:
        if self.cfg.algo == "value_iteration":
            q = model.q
            with torch.no_grad():
                target = (batch["prob"] * (batch["reward"] + self.cfg.gamma * (1 - batch["done"])
                                           * q.max(-1).values[batch["next"]])).sum(-1)
            loss = 0.5 * ((q - target) ** 2).sum()
            return StepOutput(loss, {"bellman_residual": (q - target).abs().max().detach()},
                              size=q.numel())
        q = model(batch["obs"]).gather(1, batch["actions"].long().unsqueeze(1)).squeeze(1)
        td = q - batch["target"].to(q.dtype)
        return StepOutput(0.5 * (td ** 2).sum(), {"td_error": td.abs().mean().detach()},
                          size=len(q))

    def evaluate(self, model: nn.Module, data: MDPData, split: str) -> dict[str, float]:
        exact = expected_return(data.mdp, data.isd, data.horizon, model.q.argmax(-1))
        out = {**episode_metrics(model, data, split, self.cfg),
               f"{split}/expected_return": exact,
               f"{split}/optimal_return": data.optimal,
               f"{split}/optimality": exact / data.optimal if data.optimal > 0 else float("nan")}
        if split == "val":
            out["train/env_steps"] = float(getattr(getattr(self, "source", None), "env_steps", 0))
        return out

    def summarize(self, fit: FitResult) -> dict[str, float]:
        self._history = fit.history
        out = solved_summary(fit.history, self._threshold, key="val/expected_return")
        if self.cfg.algo == "q_learning":
            out["train/env_steps"] = float(self.source.env_steps)
        return out

    def reports(self, model: nn.Module, data: MDPData) -> dict[str, str | bytes]:
        runner = getattr(getattr(self, "source", None), "runner", None)
        history = getattr(self, "_history", [])
        if runner is None:  # value iteration: plot against sweeps
            history = [{**r, "train/env_steps": r["step"]} for r in history]
        return {"learning_curve.png": learning_curve_png(
            runner.episodes if runner is not None else [], history, data.threshold,
            title=f"{self.name}: {self.cfg.algo} on {data.env_id} (seed {self.cfg.seed})",
            val_key="val/expected_return",
            xlabel="environment steps" if runner is not None else "Bellman sweeps")}

    def predictor(self, model: nn.Module, data: MDPData) -> Agent:
        return Agent(model, data.spaces, data.env_id, self.runtime)

    quick: ClassVar[dict[str, Any]] = {"eval_episodes": 200}

    def example_inputs(self, n: int) -> list[Any]:
        states = envs.spaces_of(self.cfg.env).num_states
        return [i % states for i in range(n)]

    def train_rate(self, metrics: dict[str, float]) -> tuple[float, str]:
        if self.cfg.algo == "q_learning":
            return metrics["train/env_steps"] / max(metrics["train/time_s"], 1e-9), "env steps"
        return metrics["train/steps"] / max(metrics["train/time_s"], 1e-9), "Bellman sweeps"

    def dataset_card(self) -> dict[str, Any]:
        return envs.env_card(self.cfg.env)

    def data_state(self, data: MDPData) -> dict[str, Any]:
        return {"env": data.env_id, "threshold": data.threshold}

    def data_from_state(self, state: dict[str, Any]) -> MDPData:
        return MDPData(train=None, env_id=state["env"], spaces=envs.spaces_of(state["env"]),
                       threshold=state.get("threshold"))
