"""BatchSources for RL: environment stepping lives here, never in a task's `step`.

- RolloutSource (PPO, A2C): one epoch = collect n_steps x n_envs transitions with the
  current policy, compute GAE, then yield n_epochs passes of shuffled minibatches.
- ReplaySource (DQN, tabular Q-learning): one epoch = train_freq vector steps of
  epsilon-greedy acting into a replay buffer, then gradient_steps sampled minibatches with
  their TD targets (target network; optionally double-DQN and n-step returns).
- MDPSource (value iteration): every batch is the whole known model P(s', r | s, a).

Each is resumable: its state_dict holds the recorded env actions (replayed on load),
plus what cannot be replayed (the current rollout, the target network, the RNG).

Under DDP (`shard=(rank, world)`) each process steps its own environments (the task seeds
them per rank) and collects 1/world of the environment-step budget, as each process of a
supervised run trains on 1/world of every epoch; schedules (validation, epsilon, warm-up,
clip decay) count the environment steps of all processes together.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch import nn

from taskzoo.rl.envs import Spaces, VecRunner, encode_obs, to_env_actions
from taskzoo.train.types import SourceBase, TrainState


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


class EnvStepSchedule(SourceBase):
    """Validation every `eval_freq` environment steps, at the end of the epoch (rollout or
    training phase) whose collection crossed the mark: after that epoch's updates, which is
    where Stable-Baselines3's EvalCallback looks too."""

    runner: VecRunner
    model: nn.Module
    world: int = 1  # DDP processes, each stepping its own environments
    eval_freq: int = 0
    next_eval: int = 0
    schedules_evaluation = True

    @property
    def env_steps(self) -> int:
        """Environment steps of the whole run (all processes)."""
        return self.runner.env_steps * self.world

    def setup(self, model: nn.Module, runtime: Any) -> None:
        self.model = model  # the placed (unwrapped) model: acting runs where it trains

    def eval_due(self, state: TrainState) -> bool:
        if self.eval_freq <= 0 or state.batch_in_epoch < self.steps_per_epoch:
            return False
        if self.env_steps < self.next_eval:
            return False
        self.next_eval = (self.env_steps // self.eval_freq + 1) * self.eval_freq
        return True


class RolloutSource(EnvStepSchedule):
    """On-policy batches for PPO (n_epochs > 1, minibatches) and A2C (1 epoch, 1 batch)."""

    def __init__(self, runner: VecRunner, model: nn.Module, spaces: Spaces, *, n_steps: int,
                 n_epochs: int, batch_size: int, gamma: float, gae_lambda: float,
                 total_timesteps: int, clip_range: float, clip_decay: bool, seed: int,
                 eval_freq: int = 0, shard: tuple[int, int] = (0, 1)) -> None:
        self.runner, self.model, self.spaces = runner, model, spaces
        self.world = shard[1]
        self.eval_freq = self.next_eval = eval_freq
        self.n_steps, self.n_epochs, self.gamma, self.lam = n_steps, n_epochs, gamma, gae_lambda
        self.size = n_steps * runner.num_envs
        self.batch_size = min(batch_size, self.size)
        self.minibatches = math.ceil(self.size / self.batch_size)
        self.steps_per_epoch = n_epochs * self.minibatches
        rollouts = max(1, math.ceil(total_timesteps / (self.size * self.world)))
        self.total_steps = rollouts * self.steps_per_epoch  # the Trainer's step budget
        self.clip_range, self.clip_decay, self.seed = clip_range, clip_decay, seed
        self.total_timesteps = total_timesteps
        self.rollout: dict[str, torch.Tensor] | None = None

    @torch.no_grad()
    def _collect(self) -> dict[str, torch.Tensor]:
        r, dev, T, N = self.runner, _device(self.model), self.n_steps, self.runner.num_envs
        obs_l, act_l, logp_l, val_l, rew_l, done_l, boot_l = [], [], [], [], [], [], []
        was_training = self.model.training
        self.model.eval()
        for _ in range(T):
            obs = encode_obs(r.obs, self.spaces, dev)
            action, logp, value = self.model.sample(obs)
            _, rew, term, trunc, real_next = r.step(to_env_actions(action, self.spaces))
            boot = np.zeros(N, dtype=np.float32)
            if trunc.any():  # a time limit is not a terminal state: bootstrap from V(final obs)
                idx = np.nonzero(trunc & ~term)[0]
                if len(idx):
                    _, v = self.model(encode_obs(real_next[idx], self.spaces, dev))
                    boot[idx] = v.float().cpu().numpy()
            obs_l.append(obs.cpu()); act_l.append(action.cpu()); logp_l.append(logp.cpu())
            val_l.append(value.float().cpu()); rew_l.append(torch.from_numpy(rew))
            done_l.append(torch.from_numpy((term | trunc).astype(np.float32)))
            boot_l.append(torch.from_numpy(boot))
        _, last_value = self.model(encode_obs(r.obs, self.spaces, dev))
        self.model.train(was_training)
        values, rewards = torch.stack(val_l), torch.stack(rew_l) + self.gamma * torch.stack(boot_l)
        dones = torch.stack(done_l)
        adv = torch.zeros(T, N)
        last_gae = torch.zeros(N)
        next_value = last_value.float().cpu()
        for t in reversed(range(T)):
            # terminal or truncated: the next state belongs to a new episode (the truncated
            # step's future value is already in its reward above)
            nonterminal = 1.0 - dones[t]
            delta = rewards[t] + self.gamma * next_value * nonterminal - values[t]
            last_gae = delta + self.gamma * self.lam * nonterminal * last_gae
            adv[t] = last_gae
            next_value = values[t]
        flat = lambda x: x.reshape(T * N, *x.shape[2:])  # noqa: E731
        return {"obs": flat(torch.stack(obs_l)), "actions": flat(torch.stack(act_l)),
                "logp": flat(torch.stack(logp_l)), "values": flat(values),
                "advantages": flat(adv), "returns": flat(adv + values)}

    def batches(self, state: TrainState) -> Iterator[dict[str, torch.Tensor]]:
        if self.rollout is None or state.batch_in_epoch == 0:
            self.rollout = self._collect()
        progress = min(1.0, self.env_steps / max(1, self.total_timesteps))
        clip = self.clip_range * (1.0 - progress if self.clip_decay else 1.0)
        clip_t = torch.tensor(max(clip, 1e-8))
        for k in range(state.batch_in_epoch, self.steps_per_epoch):
            if self.minibatches == 1:  # the whole rollout: a shuffle would change nothing
                yield {**self.rollout, "clip_range": clip_t}
                continue
            epoch, mb = divmod(k, self.minibatches)
            # stateless shuffles (seed, rollout, pass) make a resumed run draw the same batches
            gen = torch.Generator().manual_seed(self.seed * 1_000_003 + state.epoch * 997 + epoch)
            perm = torch.randperm(self.size, generator=gen)
            idx = perm[mb * self.batch_size:(mb + 1) * self.batch_size]
            batch = {k2: v[idx] for k2, v in self.rollout.items()}
            batch["clip_range"] = clip_t
            yield batch

    def metrics(self) -> dict[str, float]:
        return {**self.runner.metrics(), "rollout/env_steps": float(self.env_steps)}

    def state_dict(self) -> dict[str, Any]:
        return {"runner": self.runner.state_dict(), "rollout": self.rollout,
                "next_eval": self.next_eval}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.runner.restore(state["runner"])
        self.rollout = state["rollout"]
        self.next_eval = int(state["next_eval"])


class ReplaySource(EnvStepSchedule):
    """Off-policy batches: epsilon-greedy acting into a replay buffer, sampled with TD targets.

    `fresh=True` is on-line tabular Q-learning: after each vector step, one optimizer step
    per new transition, in environment order, each target computed from the table as the
    previous update left it. With SGD(lr=alpha) that is exactly the textbook
    Q[s,a] += alpha (r + gamma max Q[s'] - Q[s,a]) applied to the stream of transitions,
    duplicates of one (s, a) included (one batch of them would sum their TD errors)."""

    def __init__(self, runner: VecRunner, model: nn.Module, spaces: Spaces, *, buffer_size: int,
                 batch_size: int, learning_starts: int, train_freq: int, gradient_steps: int,
                 gamma: float, target_update: int, double: bool, eps_start: float, eps_end: float,
                 eps_fraction: float, total_timesteps: int, seed: int, fresh: bool = False,
                 eval_freq: int = 0, n_step: int = 1, shard: tuple[int, int] = (0, 1)) -> None:
        self.runner, self.model, self.spaces = runner, model, spaces
        self.world = shard[1]
        self.eval_freq = self.next_eval = eval_freq
        if fresh:
            if n_step != 1 or train_freq != 1 or buffer_size < runner.num_envs:
                raise ValueError("fresh (on-line) updates take one-step transitions of one "
                                 "vector step (n_step=1, train_freq=1, buffer_size >= n_envs)")
            gradient_steps, batch_size = runner.num_envs, 1
        self.batch_size, self.learning_starts = batch_size, learning_starts
        self.train_freq, self.gradient_steps = train_freq, gradient_steps
        self.gamma, self.target_update, self.double, self.fresh = gamma, target_update, double, fresh
        self.n_step = n_step
        # n-step returns: per env, the transitions whose n-step return is not complete yet
        self.pending: list[list[tuple]] = [[] for _ in range(runner.num_envs)]
        self.eps = (eps_start, eps_end, eps_fraction)
        self.total_timesteps, self.seed = total_timesteps, seed
        self.steps_per_epoch = gradient_steps
        # As in SB3: every epoch collects train_freq vector steps; it trains only once more
        # than learning_starts steps were taken.
        per_epoch = train_freq * runner.num_envs * self.world
        epochs = max(1, math.ceil(total_timesteps / per_epoch))
        warmup = min(epochs - 1, learning_starts // per_epoch)
        self.total_steps = (epochs - warmup) * gradient_steps
        self.target: nn.Module | None = None  # copied in setup(), from the placed model
        self.rng = np.random.default_rng(seed + 7919)
        # The buffer holds encoded observations as tensors: a sampled batch is then five
        # index ops, with no numpy-to-torch conversion per gradient step. Images stay bytes
        # (the CNNs cast them): 84x84x4 Atari frames take 28 KB a transition, not 113. Float
        # images stay float.
        n, shape = buffer_size, spaces.obs_shape
        byte_frames = len(shape) == 3 and spaces.obs_dtype in ("uint8", "bool")
        dtype = torch.uint8 if byte_frames else torch.float32
        self.obs = torch.zeros((n, *shape), dtype=dtype)
        self.next_obs = torch.zeros_like(self.obs)
        self.act = torch.zeros(n, dtype=torch.int64)
        self.rew = torch.zeros(n, dtype=torch.float32)
        self.term = torch.zeros(n, dtype=torch.float32)
        self.disc = torch.zeros(n, dtype=torch.float32)  # gamma^k of each stored k-step return
        self.pos, self.full = 0, False
        self.last = torch.zeros(0, dtype=torch.int64)  # slots of the newest transitions

    def setup(self, model: nn.Module, runtime: Any) -> None:
        super().setup(model, runtime)
        if self.target_update > 0:
            self.target = copy.deepcopy(model).requires_grad_(False)

    def epsilon(self) -> float:
        start, end, frac = self.eps
        progress = self.env_steps / max(1.0, frac * self.total_timesteps)
        return end if progress >= 1 else start + progress * (end - start)

    def _store(self, obs: np.ndarray, actions: np.ndarray, out: tuple) -> None:
        _, rew, term, trunc, real_next = out
        cpu = torch.device("cpu")
        obs_t = encode_obs(obs, self.spaces, cpu).to(self.obs.dtype)
        next_t = encode_obs(real_next, self.spaces, cpu).to(self.obs.dtype)
        act_t = torch.as_tensor(np.asarray(actions), dtype=torch.int64)
        rew_t = torch.as_tensor(rew, dtype=torch.float32)
        term_t = torch.as_tensor(term, dtype=torch.float32)
        if self.n_step == 1:
            self._write(obs_t, act_t, rew_t, next_t, term_t, torch.full_like(rew_t, self.gamma))
            return
        rows: list[tuple] = []
        for i, queue in enumerate(self.pending):
            queue.append((obs_t[i], act_t[i], float(rew[i])))
            if term[i] or trunc[i]:  # the episode ended: every pending return is complete
                while queue:
                    rows.append(self._n_step_row(queue, next_t[i], float(term[i])))
                    queue.pop(0)
            elif len(queue) == self.n_step:
                rows.append(self._n_step_row(queue, next_t[i], 0.0))
                queue.pop(0)
        if rows:
            o, a, r, nx, d, g = zip(*rows)
            self._write(torch.stack(o), torch.stack(a), torch.tensor(r, dtype=torch.float32),
                        torch.stack(nx), torch.tensor(d, dtype=torch.float32),
                        torch.tensor(g, dtype=torch.float32))

    def _n_step_row(self, queue: list[tuple], next_obs: torch.Tensor, term: float) -> tuple:
        ret = sum(r * self.gamma ** k for k, (_, _, r) in enumerate(queue))
        return queue[0][0], queue[0][1], ret, next_obs, term, self.gamma ** len(queue)

    def _write(self, obs: torch.Tensor, act: torch.Tensor, rew: torch.Tensor,
               next_obs: torch.Tensor, term: torch.Tensor, disc: torch.Tensor) -> None:
        n = len(act)
        slots = (self.pos + torch.arange(n)) % len(self.act)
        self.obs[slots], self.next_obs[slots], self.act[slots] = obs, next_obs, act
        self.rew[slots], self.term[slots], self.disc[slots] = rew, term, disc
        self.pos = (self.pos + n) % len(self.act)
        self.full = self.full or self.pos < n
        self.last = slots

    @torch.no_grad()
    def _act(self) -> np.ndarray:
        obs = encode_obs(self.runner.obs, self.spaces, _device(self.model))
        greedy = self.model(obs).argmax(-1).cpu().numpy()
        explore = self.rng.random(len(greedy)) < self.epsilon()
        random = self.rng.integers(0, self.spaces.num_actions, len(greedy))
        return np.where(explore, random, greedy).astype(np.int64)

    def _collect(self, vector_steps: int) -> None:
        for _ in range(vector_steps):
            before = self.runner.obs
            actions = self._act()
            self._store(before, actions, self.runner.step(actions))

    def batches(self, state: TrainState) -> Iterator[dict[str, torch.Tensor]]:
        if state.batch_in_epoch == 0:
            self._collect(self.train_freq)
            while self.env_steps <= self.learning_starts:  # warm-up: acting only
                self._collect(self.train_freq)
        for k in range(state.batch_in_epoch, self.gradient_steps):
            # a generator: the k-th target is computed only after update k-1 was applied
            yield self._sample(k)

    @torch.no_grad()
    def _sample(self, k: int) -> dict[str, torch.Tensor]:
        if self.fresh:  # the k-th transition of the newest vector step
            idx = self.last[k:k + 1]
        else:
            high = len(self.act) if self.full else self.pos
            idx = torch.randint(high, (self.batch_size,))
        dev = _device(self.model)
        obs, nxt = self.obs[idx].to(dev), self.next_obs[idx].to(dev)
        target_net = self.target if self.target is not None else self.model
        q_next = target_net(nxt)
        if self.double:
            best = self.model(nxt).argmax(-1, keepdim=True)
            next_v = q_next.gather(-1, best).squeeze(-1)
        else:
            next_v = q_next.max(-1).values
        # in the values' dtype, and one-step targets keep gamma a Python float: tabular
        # Q-learning (a float64 table) is then exactly the textbook update, to the last bit
        rew, term = self.rew[idx].to(dev, next_v.dtype), self.term[idx].to(dev, next_v.dtype)
        disc = self.gamma if self.n_step == 1 else self.disc[idx].to(dev, next_v.dtype)
        target = rew + disc * (1.0 - term) * next_v
        return {"obs": obs, "actions": self.act[idx].to(dev), "target": target}

    def after_update(self, state: TrainState) -> None:
        if self.target is not None and state.step % self.target_update == 0:
            self.target.load_state_dict(self.model.state_dict())

    def metrics(self) -> dict[str, float]:
        return {**self.runner.metrics(), "rollout/env_steps": float(self.env_steps),
                "rollout/epsilon": self.epsilon()}

    def state_dict(self) -> dict[str, Any]:
        return {"runner": self.runner.state_dict(),
                "target": self.target.state_dict() if self.target is not None else None,
                "rng": json.dumps(self.rng.bit_generator.state), "next_eval": self.next_eval}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.pos, self.full = 0, False
        self.pending = [[] for _ in self.pending]
        self.runner.restore(state["runner"], on_step=self._store)  # refills the buffer
        if self.target is not None:
            self.target.load_state_dict(state["target"])
        self.rng.bit_generator.state = json.loads(state["rng"])
        self.next_eval = int(state["next_eval"])


class MDPSource(SourceBase):
    """Value iteration's batches: the environment's own model, as dense tensors.

    P[s, a, k] lists outcome k of action a in state s: probability, next state, reward and
    whether it ends the episode (gymnasium's toy-text `env.unwrapped.P`)."""

    steps_per_epoch = 1

    def __init__(self, P: dict[int, dict[int, list[tuple]]], *, sweeps: int) -> None:
        S, A = len(P), len(P[0])
        K = max(len(P[s][a]) for s in P for a in P[s])
        self.prob = torch.zeros(S, A, K, dtype=torch.float64)
        self.next = torch.zeros(S, A, K, dtype=torch.long)
        self.rew = torch.zeros(S, A, K, dtype=torch.float64)
        self.done = torch.zeros(S, A, K, dtype=torch.float64)
        for s in range(S):
            for a in range(A):
                for k, (p, s2, r, d) in enumerate(P[s][a]):
                    self.prob[s, a, k], self.next[s, a, k] = p, s2
                    self.rew[s, a, k], self.done[s, a, k] = r, float(d)
        self.total_steps = sweeps
        self.env_steps = 0  # planning touches no environment

    def batches(self, state: TrainState) -> Iterator[dict[str, torch.Tensor]]:
        if state.batch_in_epoch == 0:
            yield {"prob": self.prob, "next": self.next, "reward": self.rew, "done": self.done}

    def metrics(self) -> dict[str, float]:
        return {"rollout/env_steps": 0.0}
