"""RL against Stable-Baselines3: time to solve CartPole-v1 with PPO and DQN, taskzoo's recipes
against RL Baselines3 Zoo's tuned hyperparameters, same seeds, in one process.

    python benchmarks/rl_vs_sb3.py [--algos ppo,dqn] [--seeds 0,1,2] [--eval-freq 2560]
        [--threads N] [--json F] [--whole] [--quick]

Both libraries validate after every eval_freq environment steps of training on 10
deterministic episodes (the same episode seeds for both) and stop at the first validation
whose mean return is >= 475. Time-to-solve is the training time until that validation,
evaluation excluded; steps/s is environment steps / training time (evaluation excluded). A
run that never solves counts as its full training time. Runs alternate (SB3 then taskzoo for
one seed, taskzoo then SB3 for the next) so drift in machine speed hits both alike. Prints a
table per algorithm, the medians over seeds and the ratios taskzoo/SB3 of the median
time-to-solve (target <= 0.5) and of the median steps/s. --whole adds PPO's whole default
run (`taskzoo run cartpole`, evaluation and run directory included) against SB3's model
built, `learn()`ed for the zoo's 1e5 steps and evaluated on the same 20 episode seeds: the
median wall times and their ratio (target <= 0.5), both at their evaluated return. --quick caps every run at 5000
environment steps: a smoke test of the script, not a measurement.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import stable_baselines3 as sb3
import torch
from stable_baselines3 import DQN, PPO
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env

import taskzoo
from taskzoo.bench.peers import peer_row, write_report

ENV_ID = "CartPole-v1"
SOLVED = 475.0  # CartPole-v1's reward_threshold
VAL_EPISODES = 10
QUICK_CAP = 5_000


def linear(start: float) -> Callable[[float], float]:
    """rl-zoo's lin_X: X * progress_remaining, from X at the start to 0 at the end."""
    return lambda progress_remaining: progress_remaining * start


# RL Baselines3 Zoo's tuned CartPole-v1 hyperparameters:
# rl-baselines3-zoo hyperparams/ppo.yml and hyperparams/dqn.yml (entry CartPole-v1).
SB3_HYPERPARAMS: dict[str, dict[str, Any]] = {
    "ppo": dict(n_envs=8, n_timesteps=100_000, policy="MlpPolicy", n_steps=32, batch_size=256,
                gae_lambda=0.8, gamma=0.98, n_epochs=20, ent_coef=0.0,
                learning_rate="lin_1e-3", clip_range="lin_0.2"),
    "dqn": dict(n_envs=1, n_timesteps=50_000, policy="MlpPolicy", learning_rate=2.3e-3,
                batch_size=64, buffer_size=100_000, learning_starts=1_000, gamma=0.99,
                target_update_interval=10, train_freq=256, gradient_steps=128,
                exploration_fraction=0.16, exploration_final_eps=0.04,
                policy_kwargs=dict(net_arch=[256, 256])),
}


def validate(model: BaseAlgorithm, seed: int, *, episodes: int = VAL_EPISODES,
             base: int = 10_000) -> float:
    """Mean return of `episodes` deterministic episodes, episode i seeded with
    base + 100 * seed + i: the seeds taskzoo's validation uses (tasks/common/control.py;
    base 20_000 for its final evaluation), distinct from the training envs' seeds."""
    env = gym.make_vec(ENV_ID, num_envs=episodes, vectorization_mode="sync",
                       vector_kwargs={"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP})
    try:
        obs, _ = env.reset(seed=[base + 100 * seed + i for i in range(episodes)])
        returns = np.zeros(episodes)
        running = np.ones(episodes, dtype=bool)
        while running.any():
            actions, _ = model.predict(obs, deterministic=True)
            obs, rew, term, trunc, _ = env.step(actions)
            returns += rew * running
            running &= ~(term | trunc)
    finally:
        env.close()
    return float(returns.mean())


class SolveCallback(BaseCallback):
    """Validates every eval_freq env steps, keeps evaluation time out of the training clock,
    records the first solved validation and stops training there.

    Validation runs at the start of a rollout (after the previous rollout's update), as
    taskzoo validates after an update; training stops at the next env step."""

    def __init__(self, eval_freq: int, seed: int) -> None:
        super().__init__()
        self.eval_freq, self.seed = eval_freq, seed
        self.t0 = 0.0  # set just before learn()
        self.eval_time = 0.0
        self.last_eval_step = 0
        self.solved_time, self.solved_step = -1.0, -1

    def validate_now(self, train_s: float | None = None) -> None:
        start = time.perf_counter()
        if train_s is None:
            train_s = start - self.t0 - self.eval_time
        mean = validate(self.model, self.seed)
        self.eval_time += time.perf_counter() - start
        self.last_eval_step = self.num_timesteps
        if mean >= SOLVED and self.solved_step < 0:
            self.solved_time, self.solved_step = train_s, self.num_timesteps

    def _on_rollout_start(self) -> None:
        if self.num_timesteps - self.last_eval_step >= self.eval_freq and self.solved_step < 0:
            self.validate_now()

    def _on_step(self) -> bool:
        return self.solved_step < 0


def result(library: str, algo: str, seed: int, solved_time: float, solved_step: float,
           env_steps: float, train_time: float) -> dict[str, Any]:
    solved = solved_step >= 0
    return {"library": library, "algo": algo, "seed": seed, "solved": solved,
            "time_to_solve_s": round(solved_time if solved else train_time, 3),
            "solved_at_step": int(solved_step), "env_steps": int(env_steps),
            "train_time_s": round(train_time, 3),
            "steps_per_s": round(env_steps / max(train_time, 1e-9), 1)}


def sb3_model(algo: str, seed: int) -> tuple[BaseAlgorithm, Any, int]:
    """(model, its vector env, its total timesteps) with RL Baselines3 Zoo's recipe."""
    hp = dict(SB3_HYPERPARAMS[algo])
    n_envs, total, policy = hp.pop("n_envs"), hp.pop("n_timesteps"), hp.pop("policy")
    for key, value in hp.items():
        if isinstance(value, str) and value.startswith("lin_"):
            hp[key] = linear(float(value[4:]))
    env = make_vec_env(ENV_ID, n_envs=n_envs, seed=seed)  # DummyVecEnv
    model = (PPO if algo == "ppo" else DQN)(policy, env, seed=seed, device="cpu", verbose=0, **hp)
    return model, env, total


def run_sb3(algo: str, seed: int, eval_freq: int, cap: int | None) -> dict[str, Any]:
    model, env, total = sb3_model(algo, seed)
    cb = SolveCallback(eval_freq, seed)
    cb.t0 = time.perf_counter()
    model.learn(total_timesteps=min(total, cap or total), callback=cb)
    train_time = time.perf_counter() - cb.t0 - cb.eval_time
    if cb.solved_step < 0 and cb.last_eval_step < model.num_timesteps:
        cb.validate_now(train_s=train_time)  # taskzoo also validates at the end of training
    env.close()
    return result("sb3", algo, seed, cb.solved_time, cb.solved_step, model.num_timesteps,
                  train_time)


def run_taskzoo(algo: str, seed: int, eval_freq: int, cap: int | None) -> dict[str, Any]:
    extra = {"total_timesteps": cap} if cap else {}
    with tempfile.TemporaryDirectory() as tmp:
        r = taskzoo.run("cartpole", algo=algo, seed=seed, out=Path(tmp) / "run", progress=False,
                        stop_when_solved=True, eval_freq=eval_freq, val_episodes=VAL_EPISODES,
                        **extra)
    m = r.metrics
    return result("taskzoo", algo, seed, m["train/solved_time_s"], m["train/solved_at_step"],
                  m["train/env_steps"], m["train/time_s"])


def whole_runs(seeds: list[int], cap: int | None) -> list[dict[str, Any]]:
    """PPO's whole default run, as a user gets it: `taskzoo.run("cartpole")` (its validations,
    final evaluation on 20 episodes and run directory included) against SB3's model built
    and `learn()`ed with the zoo recipe for its 1e5 steps, then evaluated on the same 20
    episode seeds. Wall time from the call to the figure; the two alternate seed by seed."""
    def sb3(seed: int) -> dict[str, Any]:
        t0 = time.perf_counter()
        model, env, total = sb3_model("ppo", seed)
        model.learn(total_timesteps=min(total, cap or total))
        ret = validate(model, seed, episodes=20, base=20_000)
        env.close()
        return {"library": "sb3", "seed": seed, "wall_s": round(time.perf_counter() - t0, 3),
                "eval_return": ret}

    def ours(seed: int) -> dict[str, Any]:
        extra = {"total_timesteps": cap} if cap else {}
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            r = taskzoo.run("cartpole", seed=seed, out=Path(tmp) / "run", progress=False,
                            **extra)
        return {"library": "taskzoo", "seed": seed,
                "wall_s": round(time.perf_counter() - t0, 3),
                "eval_return": r.metrics["eval/mean_return"]}

    runs = []
    for i, seed in enumerate(seeds):
        for fn in ((sb3, ours) if i % 2 == 0 else (ours, sb3)):
            runs.append(fn(seed))
    return runs


def print_whole(runs: list[dict[str, Any]]) -> tuple[float, float]:
    print(f"\n== PPO on {ENV_ID}: the whole default run vs SB3 learn() + evaluation ==")
    for r in runs:
        print(f"{r['seed']:>4}  {r['library']:<8} wall {r['wall_s']:8.2f} s  "
              f"eval return (20 episodes) {r['eval_return']:.1f}")
    med = {lib: statistics.median(r["wall_s"] for r in runs if r["library"] == lib)
           for lib in ("sb3", "taskzoo")}
    print(f"median wall: taskzoo {med['taskzoo']:.2f} s, SB3 {med['sb3']:.2f} s, ratio "
          f"{med['taskzoo'] / max(med['sb3'], 1e-9):.3f} (target <= 0.5)")
    return med["taskzoo"], med["sb3"]


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for lib in ("sb3", "taskzoo"):
        mine = [r for r in runs if r["library"] == lib]
        out[lib] = {"median_time_to_solve_s": statistics.median(r["time_to_solve_s"] for r in mine),
                    "median_steps_per_s": statistics.median(r["steps_per_s"] for r in mine),
                    "solved": sum(r["solved"] for r in mine), "runs": len(mine)}
    s, t = out["sb3"], out["taskzoo"]
    out["ratio_time_to_solve"] = t["median_time_to_solve_s"] / max(s["median_time_to_solve_s"], 1e-9)
    out["ratio_steps_per_s"] = t["median_steps_per_s"] / max(s["median_steps_per_s"], 1e-9)
    return out


def print_table(algo: str, runs: list[dict[str, Any]], summary: dict[str, Any]) -> None:
    print(f"\n== {algo.upper()} on {ENV_ID} ==")
    print(f"{'seed':>4}  {'library':<8} {'solved':<6} {'time-to-solve s':>15} "
          f"{'steps at solve':>14} {'steps/s':>9}")
    for r in runs:
        step = str(r["solved_at_step"]) if r["solved"] else "-"
        print(f"{r['seed']:>4}  {r['library']:<8} {'yes' if r['solved'] else 'no':<6} "
              f"{r['time_to_solve_s']:>15.2f} {step:>14} {r['steps_per_s']:>9.0f}")
    for lib in ("sb3", "taskzoo"):
        s = summary[lib]
        print(f"median {lib:<8} time-to-solve {s['median_time_to_solve_s']:8.2f} s  "
              f"steps/s {s['median_steps_per_s']:8.0f}  (solved {s['solved']}/{s['runs']})")
    print(f"ratio taskzoo/SB3: median time-to-solve {summary['ratio_time_to_solve']:.3f} "
          f"(target <= 0.5), median steps/s {summary['ratio_steps_per_s']:.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--algos", default="ppo,dqn", help="comma-separated: ppo, dqn")
    ap.add_argument("--seeds", default="0,1,2", help="comma-separated integers")
    ap.add_argument("--eval-freq", type=int, default=2560,
                    help="env steps between validations, both libraries (taskzoo's default)")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads for both")
    ap.add_argument("--json", default=None, help="also write every run and the summary here")
    ap.add_argument("--whole", action="store_true",
                    help="also PPO's whole default run against SB3's learn() + evaluation")
    ap.add_argument("--quick", action="store_true",
                    help=f"cap every run at {QUICK_CAP} env steps (a smoke test, not a measurement)")
    args = ap.parse_args()
    algos = [a.strip() for a in args.algos.split(",") if a.strip()]
    bad = [a for a in algos if a not in SB3_HYPERPARAMS]
    if bad:
        ap.error(f"--algos: unknown {', '.join(bad)}; choose from ppo, dqn")
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    if args.threads:
        torch.set_num_threads(args.threads)
    # taskzoo's runs flush denormals to zero on the CPU (within the run only); this script's
    # own process sets it up front so SB3 runs under it too: both get the same arithmetic.
    torch.set_flush_denormal(True)
    cap = QUICK_CAP if args.quick else None
    setup = (f"env={ENV_ID} seeds={seeds} eval_freq={args.eval_freq} val_episodes={VAL_EPISODES} "
             f"solved>={SOLVED:g} threads={torch.get_num_threads()} flush_denormal=on "
             f"torch={torch.__version__} sb3={sb3.__version__} gymnasium={gym.__version__}"
             + (f" QUICK: runs capped at {QUICK_CAP} env steps" if cap else ""))
    print(setup)
    print("time-to-solve: training seconds (evaluation excluded) to the first validation with "
          "mean >= 475; an unsolved run (solved=no) counts as its full training time.")
    report: dict[str, Any] = {"env": ENV_ID, "seeds": seeds, "eval_freq": args.eval_freq,
                              "threads": torch.get_num_threads(), "quick": args.quick,
                              "sb3_hyperparams": SB3_HYPERPARAMS, "algos": {}}
    rows: list[dict[str, Any]] = []
    for algo in algos:
        runs: list[dict[str, Any]] = []
        for i, seed in enumerate(seeds):
            order = (run_sb3, run_taskzoo) if i % 2 == 0 else (run_taskzoo, run_sb3)
            for fn in order:
                runs.append(fn(algo, seed, args.eval_freq, cap))
        summary = summarize(runs)
        print_table(algo, runs, summary)
        report["algos"][algo] = {"runs": runs, "summary": summary}
        sb, tz = summary["sb3"], summary["taskzoo"]
        rows += [
            peer_row(f"{algo.upper()} CartPole time-to-solve vs SB3", tz["median_time_to_solve_s"],
                     sb["median_time_to_solve_s"], "s", "lower", "<= 0.5"),
            peer_row(f"{algo.upper()} CartPole training speed vs SB3", tz["median_steps_per_s"],
                     sb["median_steps_per_s"], "steps/s", "higher"),
        ]
    if args.whole:
        runs = whole_runs(seeds, cap)
        ours, theirs = print_whole(runs)
        report["whole"] = runs
        rows.append(peer_row("PPO CartPole whole run vs SB3 learn()", ours, theirs, "s",
                             "lower", "<= 0.5"))
    write_report(args.json, setup, rows, **report)


if __name__ == "__main__":
    main()
