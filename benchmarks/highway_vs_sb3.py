"""Driving against Stable-Baselines3: DQN on highway-fast-v0 with highway-env's documented
recipe, taskzoo's default run beside SB3's, same steps and seeds, in one process.

    python benchmarks/highway_vs_sb3.py [--seeds 0] [--episodes 50] [--json F] [--quick]

SB3's side is the documentation's script (scripts/sb3_highway_dqn.py): DQN("MlpPolicy",
net_arch [256, 256], lr 5e-4, buffer 15,000, learning_starts 200, batch 32, gamma 0.8,
train_freq 1, gradient_steps 1, target_update_interval 50, exploration_fraction 0.7),
learn(2e4). taskzoo's is `taskzoo run highway seed=S` (the same recipe; it keeps its best
validation). Both are then scored on the same `--episodes` greedy episodes, episode i seeded
20_000 + 100 * seed + i (taskzoo's final-evaluation seeds): mean return, crash rate (an
episode ending in a crash) and mean speed. Wall time covers the whole of each side: the
model built, trained and evaluated (taskzoo: its validations and run directory too). The
sides alternate seed by seed. --quick: 300 steps and 2 episodes, a smoke test only.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import stable_baselines3 as sb3
import torch
from stable_baselines3 import DQN

import taskzoo
from taskzoo.bench.peers import peer_row, write_report
from taskzoo.rl import envs

ENV_ID = "highway-fast-v0"
STEPS = 20_000


def score(act: Any, seed: int, episodes: int) -> dict[str, float]:
    """Mean return, crash rate and mean speed of greedy episodes on taskzoo's eval seeds."""
    stats: dict[str, np.ndarray] = {}
    returns, _ = envs.run_episodes(act, ENV_ID, episodes, 20_000 + 100 * seed,
                                   watch=("crashed", "speed"), stats=stats)
    return {"mean_return": float(returns.mean()),
            "crash_rate": float(stats["crashed_last"].mean()),
            "mean_speed": float(stats["speed"].mean())}


def run_sb3(seed: int, steps: int, episodes: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    env = envs.make_env(ENV_ID)
    model = DQN("MlpPolicy", env, policy_kwargs=dict(net_arch=[256, 256]), learning_rate=5e-4,
                buffer_size=15_000, learning_starts=min(200, steps // 2), batch_size=32,
                gamma=0.8, train_freq=1, gradient_steps=1, target_update_interval=50,
                exploration_fraction=0.7, seed=seed, device="cpu", verbose=0)
    model.learn(total_timesteps=steps)
    env.close()
    figures = score(lambda obs: model.predict(obs, deterministic=True)[0], seed, episodes)
    return {"library": "sb3", "seed": seed, "wall_s": round(time.perf_counter() - t0, 2),
            **figures}


def run_taskzoo(seed: int, steps: int, episodes: int) -> dict[str, Any]:
    quick = {} if steps == STEPS else {"total_timesteps": steps, "learning_starts": steps // 2,
                                       "eval_freq": steps, "val_episodes": 2}
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        r = taskzoo.run("highway", seed=seed, out=Path(tmp) / "run", progress=False,
                        eval_episodes=episodes, **quick)
    m = r.metrics
    return {"library": "taskzoo", "seed": seed, "wall_s": round(time.perf_counter() - t0, 2),
            "mean_return": m["eval/mean_return"], "crash_rate": m["eval/crash_rate"],
            "mean_speed": m["eval/mean_speed"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="0", help="comma-separated integers")
    ap.add_argument("--episodes", type=int, default=50, help="evaluation episodes per run")
    ap.add_argument("--json", default=None, help="also write every run and the rows here")
    ap.add_argument("--quick", action="store_true", help="300 steps, 2 episodes: a smoke test")
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    steps, episodes = (300, 2) if args.quick else (STEPS, args.episodes)
    setup = (f"env={ENV_ID} steps={steps} seeds={seeds} episodes={episodes} "
             f"threads={torch.get_num_threads()} torch={torch.__version__} sb3={sb3.__version__}"
             + (" QUICK: a smoke test, not a measurement" if args.quick else ""))
    print(setup)
    runs = []
    for i, seed in enumerate(seeds):
        for fn in ((run_sb3, run_taskzoo) if i % 2 == 0 else (run_taskzoo, run_sb3)):
            runs.append(fn(seed, steps, episodes))
            r = runs[-1]
            print(f"{r['seed']:>4}  {r['library']:<8} wall {r['wall_s']:8.1f} s  return "
                  f"{r['mean_return']:6.2f}  crash rate {r['crash_rate']:.2f}  speed "
                  f"{r['mean_speed']:.1f} m/s", flush=True)

    def med(lib: str, key: str) -> float:
        return statistics.median(r[key] for r in runs if r["library"] == lib)

    rows = [peer_row("DQN highway-fast return vs SB3", med("taskzoo", "mean_return"),
                     med("sb3", "mean_return"), "return", "higher", ">= 1"),
            peer_row("DQN highway-fast crash rate vs SB3", med("taskzoo", "crash_rate") + 1e-9,
                     med("sb3", "crash_rate") + 1e-9, "share", "lower"),
            peer_row("DQN highway-fast whole run vs SB3", med("taskzoo", "wall_s"),
                     med("sb3", "wall_s"), "s", "lower")]
    write_report(args.json, setup, rows, runs=runs)


if __name__ == "__main__":
    main()
