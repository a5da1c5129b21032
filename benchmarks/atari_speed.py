"""What a CPU can do with the atari task: environment steps through taskzoo's Atari chain,
and the Nature CNN's costs in the PPO recipe.

    python benchmarks/atari_speed.py [--threads 1] [--steps 3000]   # needs the atari extra

For Pong and Breakout: env steps/s of one environment (`taskzoo/Atari-v0`, random actions)
and of 8 in gymnasium's sync vector env (the recipe's). Then the network, with `--threads`
torch threads: a rollout's forward for 8 observations, and one PPO update on a minibatch of
256 (forward, backward, gradient clip, Adam). Each figure is the median of its repeats;
the load average is printed too: on a shared machine the figures are lower bounds.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
import torch

from taskzoo.models import build
from taskzoo.rl import envs
from taskzoo.rl.atari import ENV_ID


def env_rate(game: str, n_envs: int, steps: int) -> float:
    """Env steps/s of `n_envs` environments of `game` under random actions."""
    rng = np.random.default_rng(0)
    if n_envs == 1:
        env = envs.make_env(ENV_ID, game=game)
        env.reset(seed=0)
        start = time.perf_counter()
        for _ in range(steps):
            _, _, term, trunc, _ = env.step(int(rng.integers(env.action_space.n)))
            if term or trunc:
                env.reset()
        rate = steps / (time.perf_counter() - start)
    else:
        env = envs.make_vec_env(ENV_ID, n_envs, game=game)
        env.reset(seed=0)
        start = time.perf_counter()
        for _ in range(steps // n_envs):
            env.step(rng.integers(env.single_action_space.n, size=n_envs))
        rate = (steps // n_envs) * n_envs / (time.perf_counter() - start)
    env.close()
    return rate


def median_ms(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def network_costs(threads: int) -> tuple[float, float]:
    """(ms of a rollout forward for 8 observations, ms of one PPO update on 256)."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        torch.manual_seed(0)
        model = build("cnn_actor_critic", obs_shape=(84, 84, 4), num_actions=6)
        opt = torch.optim.Adam(model.parameters(), lr=2.5e-4)
        obs = torch.randint(0, 256, (256, 84, 84, 4), dtype=torch.uint8)
        actions = torch.randint(0, 6, (256,))

        @torch.no_grad()
        def forward() -> None:
            model.sample(obs[:8])

        def update() -> None:
            logp, entropy, values = model.evaluate_actions(obs, actions)
            loss = -logp.mean() + 0.25 * (values ** 2).mean() - 0.01 * entropy.mean()
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 0.5)
            opt.step()

        return median_ms(forward, 50), median_ms(update, 10)
    finally:
        torch.set_num_threads(before)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=1, help="torch threads for the network")
    ap.add_argument("--steps", type=int, default=3000, help="env steps per measurement")
    args = ap.parse_args()
    envs.check_env_id(ENV_ID)
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    for game in ("pong", "breakout"):
        one, eight = env_rate(game, 1, args.steps), env_rate(game, 8, args.steps)
        print(f"{game:9s} 1 env {one:7,.0f} steps/s ({4 * one:,.0f} frames/s)   "
              f"8 envs (sync) {eight:7,.0f} steps/s")
    fwd, upd = network_costs(args.threads)
    print(f"Nature CNN, {args.threads} thread(s): rollout forward of 8 observations "
          f"{fwd:.1f} ms, PPO update on 256 {upd:.0f} ms")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
