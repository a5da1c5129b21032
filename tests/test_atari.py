"""The atari task: taskzoo's Atari preprocessing against gymnasium's reference wrappers and
Stable-Baselines3's (frame for frame on the same seeds and actions), whole unclipped games for
evaluation, short PPO and DQN runs on the CPU, errors, and the GPU recipe under -m gpu."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
import torch

import taskzoo
from taskzoo.errors import ConfigError, UnknownNameError, UsageError

pytestmark = pytest.mark.skipif(importlib.util.find_spec("ale_py") is None,
                                reason='ale-py (GPL-2.0) is an optional extra: '
                                       'pip install "taskzoo[atari]"')

SMOKE = dict(game="breakout", device="cpu", threads=1, total_timesteps=256, n_steps=32,
             eval_freq=10**6, val_episodes=1, eval_episodes=1, progress=False)


def _ours(game, **kwargs):
    import gymnasium as gym

    from taskzoo.rl import envs
    from taskzoo.rl.atari import ENV_ID

    envs.check_env_id(ENV_ID)  # registers it, as the task does
    return gym.make(ENV_ID, game=game, **kwargs)


def _reference(game, *, sb3=False):
    """gymnasium's own chain on ALE/<Game>-v5 without frame skip or sticky actions; with
    `sb3`, SB3's EpisodicLifeEnv, FireResetEnv and ClipRewardEnv in AtariWrapper's order."""
    import ale_py
    import gymnasium as gym
    from gymnasium.wrappers import AtariPreprocessing, FrameStackObservation

    gym.register_envs(ale_py)
    name = "".join(w.capitalize() for w in game.split("_"))
    env = gym.make(f"ALE/{name}-v5", frameskip=1, repeat_action_probability=0.0)
    env = AtariPreprocessing(env, noop_max=30, frame_skip=4, screen_size=84)
    if sb3:
        from stable_baselines3.common import atari_wrappers as w

        env = w.ClipRewardEnv(w.FireResetEnv(w.EpisodicLifeEnv(env)))
    return FrameStackObservation(env, 4)


def _lockstep(ours, ref, steps, seed):
    """Step both with the same random actions; every frame, reward and end must agree.
    Returns (life-loss ends, game ends, rewards seen)."""
    rng = np.random.default_rng(seed)
    a, _ = ours.reset(seed=seed)
    b, _ = ref.reset(seed=seed)
    assert ours.unwrapped.ale.getEpisodeFrameNumber() == ref.unwrapped.ale.getEpisodeFrameNumber()
    lives_lost = games = 0
    rewards = []
    for t in range(steps):
        assert a.shape == (84, 84, 4) and a.dtype == np.uint8
        np.testing.assert_array_equal(a, np.moveaxis(np.asarray(b), 0, -1), err_msg=f"step {t}")
        action = int(rng.integers(ours.action_space.n))
        a, ra, ta, ua, _ = ours.step(action)
        b, rb, tb, ub, _ = ref.step(action)
        assert (ra, ta, ua) == (rb, tb, ub), f"step {t}"
        rewards.append(ra)
        if ta or ua:
            lives = ours.unwrapped.ale.lives()
            lives_lost += lives > 0
            games += lives == 0 or ua
            a, _ = ours.reset()
            b, _ = ref.reset()
    return lives_lost, games, rewards


@pytest.mark.parametrize("game", ["pong", "breakout"])
def test_frames_equal_gymnasiums_atari_preprocessing_and_frame_stack(game):
    ours = _ours(game, episodic_life=False, fire_reset=False, clip_rewards=False)
    ref = _reference(game)
    _lockstep(ours, ref, 250, seed=5)
    # no-op starts: the same seed gives the same 1-30 no-ops, other seeds other counts
    frames = set()
    for seed in range(8):
        ours.reset(seed=seed)
        ref.reset(seed=seed)
        n = ours.unwrapped.ale.getEpisodeFrameNumber()
        assert n == ref.unwrapped.ale.getEpisodeFrameNumber() and 1 <= n <= 30
        frames.add(n)
    assert len(frames) >= 4


@pytest.mark.parametrize("game", ["pong", "breakout"])
def test_lives_fire_and_clipping_equal_sb3s_wrappers(game):
    ours = _ours(game)  # the training defaults: episodic life, fire reset, clipped rewards
    lost, games, rewards = _lockstep(ours, _reference(game, sb3=True), 400, seed=1)
    assert set(rewards) <= {-1.0, 0.0, 1.0} and any(rewards)
    if game == "breakout":  # random play loses lives within 400 steps: both paths were taken
        assert lost >= 3 and games >= 1


def test_a_lost_life_ends_the_episode_but_not_the_game():
    env = _ours("breakout")
    env.reset(seed=0)
    ale = env.unwrapped.ale
    assert ale.lives() == 5
    rng = np.random.default_rng(0)
    ends = []
    while len(ends) < 6:
        _, _, term, trunc, _ = env.step(int(rng.integers(4)))
        if term or trunc:
            ends.append((ale.lives(), ale.getEpisodeFrameNumber()))
            env.reset()
    # lives 4, 3, 2, 1 end episodes of one game (its frame count runs on), then game over
    # and a new game with 5 lives
    assert [lives for lives, _ in ends[:5]] == [4, 3, 2, 1, 0]
    assert all(f1 < f2 for (_, f1), (_, f2) in zip(ends[:5], ends[1:5]))
    assert ends[5][1] < ends[4][1]
    # a seeded reset always starts a new game (a resumed run replays from one)
    env.step(0)
    env.reset(seed=0)
    assert ale.lives() == 5


def test_evaluation_plays_whole_games_with_the_games_points():
    from taskzoo.tasks.atari.task import Atari, AtariConfig

    kwargs = Atari(AtariConfig(game="space_invaders")).eval_env_kwargs()
    assert kwargs == {"game": "space_invaders", "episodic_life": False, "clip_rewards": False}
    rng = np.random.default_rng(0)
    raw, clipped = _ours(**kwargs), _ours("space_invaders")
    seen = {}
    for name, env in (("raw", raw), ("clipped", clipped)):
        env.reset(seed=3)
        rewards, steps, done = [], 0, False
        while not done and steps < 3_000:
            _, r, term, trunc, _ = env.step(int(rng.integers(env.action_space.n)))
            rewards.append(r)
            steps += 1
            done = term or trunc
        seen[name] = (rewards, env.unwrapped.ale.lives(), done)
    rewards, lives, done = seen["raw"]
    assert done and lives == 0  # one episode is the whole game: every life played
    assert max(rewards) >= 5  # Space Invaders' aliens are worth 5-30 points
    assert set(seen["clipped"][0]) <= {0.0, 1.0} and seen["clipped"][1] > 0  # a life, signs


@pytest.fixture(scope="module")
def ppo_run(tmp_path_factory):
    return taskzoo.run("atari", out=tmp_path_factory.mktemp("atari") / "ppo", **SMOKE)


def test_a_short_ppo_run_trains_the_nature_cnn_and_restores(ppo_run):
    from taskzoo.models.policy import NatureCNN

    m = ppo_run.metrics
    assert m["train/env_steps"] >= 256 and ppo_run.config.algo == "ppo"
    assert ppo_run.config.lr == 2.5e-4 and ppo_run.config.clip_range == 0.1  # CleanRL's recipe
    assert m["eval/mean_length"] > 50 and np.isfinite(m["eval/mean_return"])
    assert isinstance(ppo_run.model.encoder, NatureCNN)
    data = json.loads((ppo_run.run_dir / "data.json").read_text())
    assert data["env"] == "taskzoo/Atari-v0" and data["env_kwargs"] == {"game": "breakout"}
    agent = taskzoo.load_run(ppo_run.run_dir, device="cpu")
    assert agent.env_kwargs == {"game": "breakout", "episodic_life": False,
                                "clip_rewards": False}
    env = _ours(**agent.env_kwargs)
    obs, _ = env.reset(seed=0)
    action = agent(obs)
    assert len(action) == 1 and action[0] in range(4)
    assert agent(np.stack([obs, obs])) == action * 2
    assert agent(obs) == ppo_run.predictor(obs)


def test_a_short_dqn_run_keeps_frames_as_bytes(tmp_path):
    from taskzoo.rl import envs
    from taskzoo.rl.atari import ENV_ID
    from taskzoo.rl.sources import ReplaySource

    result = taskzoo.run("atari", out=tmp_path / "dqn", **{**SMOKE, "algo": "dqn",
                         "total_timesteps": 160, "learning_starts": 128, "buffer_size": 256})
    assert result.metrics["train/env_steps"] >= 160 and result.config.target_update == 250
    spaces = envs.spaces_of(ENV_ID, game="pong")
    assert spaces.obs_shape == (84, 84, 4) and spaces.num_actions == 6
    net = taskzoo.models.build("cnn_qnet", obs_shape=spaces.obs_shape, num_actions=6)
    src = ReplaySource(envs.VecRunner(ENV_ID, 1, 0, game="pong"), net, spaces, buffer_size=32,
                       batch_size=4, learning_starts=0, train_freq=8, gradient_steps=1,
                       gamma=0.99, target_update=0, double=False, eps_start=1.0, eps_end=0.1,
                       eps_fraction=0.5, total_timesteps=100, seed=0)
    src._collect(8)
    assert src.obs.dtype == torch.uint8 and src.next_obs.dtype == torch.uint8
    assert int(src.obs[:8].max()) > 1  # grey levels, not 0/1
    batch = src._sample(0)
    assert batch["obs"].dtype == torch.uint8 and net(batch["obs"]).shape == (4, 6)


def test_bad_names_say_what_is_valid():
    with pytest.raises(UnknownNameError, match="Did you mean 'breakout'"):
        taskzoo.run("atari", game="breakot", progress=False)
    with pytest.raises(UnknownNameError, match="Did you mean 'space_invaders'"):
        _ours("space_invader")
    with pytest.raises(ConfigError, match="game="):
        taskzoo.run("atari", env="CartPole-v1", progress=False)


def test_missing_ale_py_names_the_extra(hide_package):
    hide_package("ale_py")
    from taskzoo.tasks.atari.task import Atari, AtariConfig

    with pytest.raises(UsageError, match=r"taskzoo\[atari\]"):
        Atari(AtariConfig()).build_data()


@pytest.mark.gpu
def test_the_gpu_recipe_trains_on_cuda_in_bf16(tmp_path):
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    # the default recipe (8 envs x 128 steps, 4 epochs of 4 minibatches) for 8 rollouts
    result = taskzoo.run("atari", game="pong", device="cuda", precision="bf16-mixed",
                         total_timesteps=8_192, eval_freq=10**6, val_episodes=1,
                         eval_episodes=1, out=tmp_path / "pong", progress=False)
    m = result.metrics
    assert next(result.model.parameters()).device.type == "cuda"
    assert m["train/env_steps"] >= 8_192 and m["train/steps"] == 8 * 16
    assert np.isfinite(m["eval/mean_return"]) and -21 <= m["eval/mean_return"] <= 21
    steps_per_s = m["train/env_steps"] / m["train/time_s"]
    print(f"\natari PPO on {torch.cuda.get_device_name()}: {steps_per_s:.0f} env steps/s "
          f"= {4 * steps_per_s:.0f} frames/s (bf16-mixed, 8 envs stepped on the CPU)")
    assert steps_per_s > 100
