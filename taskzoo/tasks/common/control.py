"""Deep RL on gymnasium: PPO, DQN and A2C agents (the tasks cartpole, acrobot and lunarlander
are this ControlTask with their environments' recipes).

    taskzoo run cartpole                    # PPO, tuned recipe
    taskzoo run cartpole algo=dqn seed=1    # DQN's own tuned recipe
    taskzoo run lunarlander                 # PPO on LunarLander-v3 (box2d)
    taskzoo run cartpole env=MountainCar-v0 total_timesteps=200000   # any gymnasium id

Environment stepping lives in the BatchSources (taskzoo.rl.sources); this module is the
recipe, the losses, evaluation and the predictor. The Trainer is the same one that
trains the supervised tasks.
"""

from __future__ import annotations

import importlib.util
import warnings
from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn

from taskzoo.config import (
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveFraction,
    PositiveInt,
    Probability,
    Range,
    TrainConfig,
)
from taskzoo.errors import UsageError
from taskzoo.models import build
from taskzoo.rl import envs
from taskzoo.rl.play import episode_gif
from taskzoo.rl.report import SolvedStop, learning_curve_png, solved_summary
from taskzoo.rl.sources import ReplaySource, RolloutSource
from taskzoo.runtime import rank_seed
from taskzoo.tasks.base import DataBundle, Task
from taskzoo.tasks.common.agent import Agent, greedy_policy
from taskzoo.train.types import BatchSource, Callback, FitResult, StepOutput


# ---------------------------------------------------------------- config
@dataclass(frozen=True, kw_only=True)
class ControlConfig(TrainConfig):
    """A deep-RL recipe. The defaults below are CartPole PPO; each task overrides them."""

    env: str = "CartPole-v1"  # gymnasium id; any registered one is accepted
    algo: Literal["ppo", "dqn", "a2c"] = "ppo"  # learning algorithm (picks its tuned preset)
    model: str = ""  # network; "" = mlp_actor_critic (ppo, a2c) or mlp_qnet (dqn)
    hidden: Annotated[tuple[int, ...], Range(1, 8192)] = (64, 64)  # hidden layer widths
    activation: Literal["tanh", "relu"] = "tanh"  # hidden activation
    total_timesteps: Annotated[int, Range(1, 10**10)] = 100_000  # environment steps to train for
    n_envs: Annotated[int, Range(1, 1024)] = 8  # environments stepped side by side (each a copy in memory)
    gamma: PositiveFraction = 0.99  # discount factor
    n_steps: Annotated[int, Range(1, 65536)] = 32  # ppo/a2c: steps per environment per rollout
    n_epochs: PositiveInt = 10  # ppo: passes over each rollout
    gae_lambda: Probability = 0.95  # ppo/a2c: GAE lambda (1.0 = Monte-Carlo advantages)
    clip_range: PositiveFloat = 0.2  # ppo: policy ratio clip
    clip_decay: bool = False  # ppo: anneal the clip range linearly to 0 with the lr
    clip_value: NonNegativeFloat = 0.0  # ppo: value-function clip around the old values; 0 disables
    ent_coef: NonNegativeFloat = 0.0  # ppo/a2c: entropy bonus
    vf_coef: NonNegativeFloat = 0.5  # ppo/a2c: value loss weight
    norm_adv: bool = True  # ppo/a2c: normalise advantages per minibatch
    buffer_size: Annotated[int, Range(1, 10**7)] = 100_000  # dqn: replay buffer transitions (allocated up front)
    learning_starts: NonNegativeInt = 1_000  # dqn: random-policy steps before learning
    train_freq: PositiveInt = 4  # dqn: vector-env steps between training phases
    gradient_steps: PositiveInt = 1  # dqn: optimizer steps per training phase
    target_update: NonNegativeInt = 1_000  # dqn: optimizer steps between target syncs; 0 = none
    double: bool = False  # dqn: double-DQN targets (online argmax, target value)
    n_step: PositiveInt = 1  # dqn: n-step returns (1 = classic one-step TD targets)
    eps_start: Probability = 1.0  # dqn: initial exploration rate
    eps_end: Probability = 0.05  # dqn: final exploration rate
    eps_fraction: Probability = 0.1  # dqn: share of training over which epsilon decays
    eval_freq: PositiveInt = 10_000  # environment steps between validation evaluations
    val_episodes: PositiveInt = 10  # deterministic episodes per validation evaluation
    eval_episodes: PositiveInt = 20  # deterministic episodes of the final evaluation (fresh seeds)
    solved_return: float | None = None  # the "solved" threshold; None = the env's own
    stop_when_solved: bool = False  # end training at the first validation that is solved
    device: str = "cpu"  # small policies step faster on the CPU, beside the envs
    threads: int = 1  # small policies: one thread skips OpenMP's fork/join per op (~20% faster)
    log_every: int = 100  # optimizer steps between train/ records in metrics.jsonl
    keep: Literal["best", "last"] = "best"  # best validation (separate seeds from the final eval)


@dataclass(frozen=True)
class EnvPackage:
    """An optional package a task's environments come from, checked before anything is built."""

    module: str  # what find_spec looks for: "minatar", "ale_py"
    name: str  # as users know it: "MinAtar", "ale-py"
    license: str  # why it is an extra: "GPL-3.0"
    extra: str  # taskzoo's extra that installs it


GIF_STEPS = 300  # agent.gif's longest episode: 10 s of CartPole, 300 KB


# ---------------------------------------------------------------- data: the environment
@dataclass
class EnvData(DataBundle):
    env_id: str = ""
    spaces: envs.Spaces | None = None
    threshold: float | None = None  # return that counts as solved
    env_kwargs: dict[str, Any] = field(default_factory=dict)  # gym.make's keywords (a config)
    # evaluation's keywords where they differ from training's (Atari: whole games, unclipped
    # rewards); None = env_kwargs
    eval_kwargs: dict[str, Any] | None = None

    @property
    def play_kwargs(self) -> dict[str, Any]:
        """gym.make's keywords for evaluation and `taskzoo play`."""
        return self.env_kwargs if self.eval_kwargs is None else self.eval_kwargs


# ---------------------------------------------------------------- the task
class ControlTask(Task[ControlConfig]):
    """Shared by cartpole, acrobot and lunarlander: only the presets differ."""

    Config = ControlConfig
    monitor: ClassVar[str] = "val/mean_return"
    # CartPole caps returns at 500, so validations tie at the top: keep the latest, most
    # trained of them (the first one to reach 500 is often still brittle on new seeds)
    ties: ClassVar[str] = "last"
    eval_splits: ClassVar[tuple[str, ...]] = ("val",)
    final_splits: ClassVar[tuple[str, ...]] = ("eval",)
    preset_key: ClassVar[str] = "algo"
    # the algorithm picks the network's head, the environment its input and output sizes
    weights_fields: ClassVar[tuple[str, ...]] = ("model", "algo", "env", "hidden", "activation")
    # figures read from the episodes' `info` beside the return: (info key, "mean" over the
    # steps or the "last" step's value, the metric's name); highway: crash rate, mean speed
    episode_info: ClassVar[tuple[tuple[str, str, str], ...]] = ()
    env_package: ClassVar[EnvPackage | None] = None  # an optional package the envs need

    def env_id(self) -> str:
        """The gymnasium id to make (a task that picks it from its own fields: minatar's game)."""
        return self.cfg.env

    def env_kwargs(self) -> dict[str, Any]:
        """gym.make's keywords for the config's environment (a task with env options)."""
        return {}

    def eval_env_kwargs(self) -> dict[str, Any] | None:
        """gym.make's keywords for evaluation and play where they differ from training's
        (Atari: whole games with unclipped rewards); None = the same."""
        return None

    def weights_tag(self) -> str:
        return str(self.env_id() or self.name)

    def build_data(self, state: dict[str, Any] | None = None) -> EnvData:
        pkg = self.env_package
        if pkg is not None and importlib.util.find_spec(pkg.module) is None:
            raise UsageError(f"the {self.name} task needs {pkg.name} ({pkg.license}, an optional "
                             f'extra): pip install "taskzoo[{pkg.extra}]"')
        env_id = self.env_id()
        spec = envs.check_env_id(env_id)
        kwargs = self.env_kwargs()
        spaces = envs.spaces_of(env_id, **kwargs)
        if self.cfg.algo == "dqn" and spaces.continuous:
            raise UsageError(f"algo=dqn needs discrete actions; {env_id} has a Box "
                             f"action space. Use algo=ppo or algo=a2c.")
        threshold = self.cfg.solved_return
        if threshold is None:
            threshold = spec.reward_threshold
        self._threshold = threshold
        return EnvData(train=None, env_id=env_id, spaces=spaces, threshold=threshold,
                       env_kwargs=kwargs, eval_kwargs=self.eval_env_kwargs())

    def model_name(self, spaces: envs.Spaces) -> str:
        """The zoo network: the config's, else an MLP, or the Nature CNN for images (a task
        with its own network, minatar's, says so here)."""
        kind = "cnn_" if len(spaces.obs_shape) == 3 else "mlp_"
        return self.cfg.model or kind + ("qnet" if self.cfg.algo == "dqn" else "actor_critic")

    def build_model(self, data: EnvData) -> nn.Module:
        sp = data.spaces
        return build(self.model_name(sp), obs_shape=sp.obs_shape, num_actions=sp.num_actions,
                     continuous=sp.continuous, hidden=self.cfg.hidden,
                     activation=self.cfg.activation)

    def batches(self, data: EnvData, model: nn.Module) -> BatchSource:
        c = self.cfg
        rank, world = self.runtime.shard
        seed = rank_seed(c.seed, rank)  # under DDP each process steps its own environments
        runner = envs.VecRunner(data.env_id, c.n_envs, seed, **data.env_kwargs)
        if c.algo == "dqn":
            self.source = ReplaySource(
                runner, model, data.spaces, buffer_size=c.buffer_size, batch_size=c.batch_size,
                learning_starts=c.learning_starts, train_freq=c.train_freq,
                gradient_steps=c.gradient_steps, gamma=c.gamma, target_update=c.target_update,
                double=c.double, eps_start=c.eps_start, eps_end=c.eps_end,
                eps_fraction=c.eps_fraction, total_timesteps=c.total_timesteps, seed=seed,
                eval_freq=c.eval_freq, n_step=c.n_step, shard=(rank, world))
        else:
            ppo = c.algo == "ppo"
            self.source = RolloutSource(
                runner, model, data.spaces, n_steps=c.n_steps, n_epochs=c.n_epochs if ppo else 1,
                batch_size=c.batch_size if ppo else c.n_steps * c.n_envs, gamma=c.gamma,
                gae_lambda=c.gae_lambda, total_timesteps=c.total_timesteps,
                clip_range=c.clip_range, clip_decay=c.clip_decay, seed=seed,
                eval_freq=c.eval_freq, shard=(rank, world))
        return self.source

    def callbacks(self) -> list[Callback]:
        return [SolvedStop(self.threshold)] if self.cfg.stop_when_solved else []

    @property
    def threshold(self) -> float | None:
        return getattr(self, "_threshold", None)

    # ------------------------------------------------------------ step: one minibatch, one loss
    def step(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> StepOutput:
        if self.cfg.algo == "dqn":
            return self._dqn_step(model, batch)
        return self._pg_step(model, batch)

    def _dqn_step(self, model: nn.Module, b: dict[str, torch.Tensor]) -> StepOutput:
        q = model(b["obs"]).gather(1, b["actions"].long().unsqueeze(1)).squeeze(1)
        loss = F.smooth_l1_loss(q, b["target"].to(q.dtype))
        return StepOutput(loss, {"q_mean": q.detach().mean()}, size=len(q))

    def _pg_step(self, model: nn.Module, b: dict[str, torch.Tensor]) -> StepOutput:
        c = self.cfg
        logp, entropy, values = model.evaluate_actions(b["obs"], b["actions"])
        adv = b["advantages"]
        if c.norm_adv and len(adv) > 1:
            adv = (adv - adv.mean()) / (adv.std() + 1e-8)
        if c.algo == "a2c":
            pg_loss = -(adv * logp).mean()
            logs: dict[str, Any] = {}
        else:  # PPO's clipped surrogate (Schulman et al. 2017)
            clip = b["clip_range"]
            log_ratio = logp - b["logp"]
            ratio = log_ratio.exp()
            pg_loss = -torch.min(adv * ratio, adv * ratio.clamp(1 - clip, 1 + clip)).mean()
            with torch.no_grad():
                logs = {"approx_kl": ((ratio - 1) - log_ratio).mean(),
                        "clip_fraction": ((ratio - 1).abs() > clip).float().mean()}
        if c.clip_value > 0:
            v_clip = b["values"] + (values - b["values"]).clamp(-c.clip_value, c.clip_value)
            v_loss = torch.max((values - b["returns"]) ** 2, (v_clip - b["returns"]) ** 2).mean()
        else:
            v_loss = F.mse_loss(values, b["returns"])
        loss = pg_loss + c.vf_coef * v_loss
        if c.ent_coef:
            ent = entropy.mean()
            loss = loss - c.ent_coef * ent
        else:  # no bonus: keep the entropy out of the graph, log it only
            ent = entropy.detach().mean()
        logs.update(policy_loss=pg_loss.detach(), value_loss=v_loss.detach(), entropy=ent.detach())
        return StepOutput(loss, logs, size=len(adv))

    # ------------------------------------------------------------ evaluate
    def evaluate(self, model: nn.Module, data: EnvData, split: str) -> dict[str, float]:
        out = episode_metrics(model, data, split, self.cfg, self.episode_info)
        if split == "val" and hasattr(self, "source"):
            out["train/env_steps"] = float(self.source.env_steps)
        return out

    def summarize(self, fit: FitResult) -> dict[str, float]:
        self._history = fit.history
        steps = float(self.source.env_steps) if hasattr(self, "source") else 0.0
        return {"train/env_steps": steps, **solved_summary(fit.history, self.threshold)}

    def reports(self, model: nn.Module, data: EnvData) -> dict[str, str | bytes]:
        if not hasattr(self, "source"):
            return {}
        out: dict[str, str | bytes] = {"learning_curve.png": learning_curve_png(
            self.source.runner.episodes, getattr(self, "_history", []), data.threshold,
            title=f"{self.name}: {self.cfg.algo} on {data.env_id} (seed {self.cfg.seed})")}
        try:  # the final agent's first evaluation episode (its seed), as `taskzoo play` shows it
            seed = eval_seed(self.cfg.seed, val=False)
            out["agent.gif"] = episode_gif(self.predictor(model, data), seed=seed,
                                           max_steps=GIF_STEPS)
        except UsageError as exc:  # an env that cannot render here (a missing extra)
            warnings.warn(f"no agent.gif: {exc}", stacklevel=2)
        return out

    # ------------------------------------------------------------ predictor
    def predictor(self, model: nn.Module, data: EnvData) -> Agent:
        return Agent(model, data.spaces, data.env_id, self.runtime, env_kwargs=data.play_kwargs)

    quick: ClassVar[dict[str, Any]] = {"total_timesteps": 8_192, "eval_freq": 4_096,
                                       "val_episodes": 2, "eval_episodes": 3}

    def example_inputs(self, n: int) -> list[Any]:
        env = envs.make_env(self.env_id(), **self.env_kwargs())
        try:  # start states of seeded episodes: what an agent sees first
            return [env.reset(seed=i)[0].tolist() for i in range(n)]
        finally:
            env.close()

    def train_rate(self, metrics: dict[str, float]) -> tuple[float, str]:
        return metrics["train/env_steps"] / max(metrics["train/time_s"], 1e-9), "env steps"

    def dataset_card(self) -> dict[str, Any]:
        return envs.env_card(self.env_id())

    def data_state(self, data: EnvData) -> dict[str, Any]:
        out = {"env": data.env_id, "threshold": data.threshold}
        if data.env_kwargs:  # only an environment with options: earlier runs stay as they were
            out["env_kwargs"] = data.env_kwargs
        if data.eval_kwargs is not None:
            out["eval_kwargs"] = data.eval_kwargs
        return out

    def data_from_state(self, state: dict[str, Any]) -> EnvData:
        kwargs = dict(state.get("env_kwargs") or {})
        evals = state.get("eval_kwargs")
        return EnvData(train=None, env_id=state["env"],
                       spaces=envs.spaces_of(state["env"], **kwargs),
                       threshold=state.get("threshold"), env_kwargs=kwargs,
                       eval_kwargs=None if evals is None else dict(evals))


def eval_seed(seed: int, val: bool) -> int:
    """The first episode's seed of a validation (val) or the final evaluation of run `seed`."""
    return 10_000 * (1 if val else 2) + 100 * seed


def episode_metrics(model: nn.Module, data: Any, split: str, cfg: Any,
                    info: tuple[tuple[str, str, str], ...] = ()) -> dict[str, float]:
    """{split}/mean_return, std_return and mean_length of greedy episodes in `data`'s
    environment (its env_id, spaces and any env_kwargs): cfg.val_episodes
    for "val", cfg.eval_episodes otherwise, and the task's `episode_info` figures. Validation
    and the final evaluation use disjoint seeds, so picking the best checkpoint on
    validation does not flatter the reported figure."""
    val = split == "val"
    n = cfg.val_episodes if val else cfg.eval_episodes
    seed = eval_seed(cfg.seed, val)
    stats: dict[str, Any] = {}
    returns, lengths = envs.run_episodes(greedy_policy(model, data.spaces), data.env_id, n, seed,
                                         env_kwargs=_play_kwargs(data),
                                         watch=tuple(k for k, _, _ in info), stats=stats)
    out = {f"{split}/mean_return": float(returns.mean()),
           f"{split}/std_return": float(returns.std()),
           f"{split}/mean_length": float(lengths.mean())}
    for key, how, name in info:
        out[f"{split}/{name}"] = float(stats[key + "_last" if how == "last" else key].mean())
    return out


def _play_kwargs(data: Any) -> dict[str, Any] | None:
    """Evaluation's gym.make keywords of an EnvData (or a tabular MDP's data, which has none)."""
    if isinstance(data, EnvData):
        return data.play_kwargs
    return getattr(data, "env_kwargs", None)
