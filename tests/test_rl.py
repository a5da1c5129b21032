"""RL tasks: agents through the common Trainer, tabular solvers, resume, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from test_trainer import KillAt, Killed, assert_same_weights  # the crash helpers

import taskzoo
from taskzoo.api import resolve_task
from taskzoo.cli import main
from taskzoo.errors import UnknownNameError, UsageError
from taskzoo.models import build
from taskzoo.rl import envs
from taskzoo.rl.report import solved_summary
from taskzoo.tasks.common.tabular import expected_return, mdp_data

# CartPole's PPO recipe cut to 8192 steps (32 rollouts of 8 x 32), validation every 1024.
PPO_SMALL = dict(total_timesteps=8192, eval_freq=1024, val_episodes=3, eval_episodes=3)
DQN_SMALL = dict(algo="dqn", total_timesteps=3000, learning_starts=500, train_freq=64,
                 gradient_steps=16, hidden=(32, 32), eval_freq=1000, val_episodes=3,
                 eval_episodes=3, target_update=16, eps_fraction=0.5)


def _figures(metrics: dict) -> dict:
    timing = ("train/time_s", "train/samples_per_s", "total/time_s", "train/solved_time_s")
    return {k: v for k, v in metrics.items() if k not in timing}


# ---------------------------------------------------------------- models
def test_actor_critic_sampling_agrees_with_torch_distributions():
    torch.manual_seed(0)
    net = build("mlp_actor_critic", obs_shape=(4,), num_actions=3)
    obs = torch.randn(64, 4)
    actions, logp, values = net.sample(obs)
    head, v2 = net(obs)
    dist = torch.distributions.Categorical(logits=head)
    assert torch.allclose(logp, dist.log_prob(actions), atol=1e-6)
    assert torch.equal(values, v2)
    logp2, ent, _ = net.evaluate_actions(obs, actions)
    assert torch.allclose(logp2, logp, atol=1e-6)
    assert torch.allclose(ent, dist.entropy(), atol=1e-6)
    gauss = build("mlp_actor_critic", obs_shape=(3,), num_actions=2, continuous=True)
    a, lp, _ = gauss.sample(torch.randn(5, 3))
    assert a.shape == (5, 2) and lp.shape == (5,)


def test_q_table_accepts_indices_and_one_hot_rows():
    table = build("q_table", num_states=5, num_actions=2)
    with torch.no_grad():
        table.q.copy_(torch.arange(10, dtype=torch.float64).view(5, 2))
    states = torch.tensor([4, 0, 2])
    one_hot = torch.nn.functional.one_hot(states, 5).float()
    assert torch.equal(table(states), table(one_hot))
    assert table.act(states).tolist() == [1, 1, 1]


# ---------------------------------------------------------------- environments
def test_unknown_env_suggests_the_closest_id():
    with pytest.raises(UnknownNameError, match="Did you mean 'CartPole-v1'"):
        envs.check_env_id("CartPol-v1")
    with pytest.raises(UnknownNameError, match="CartPole-v1"):
        taskzoo.run("cartpole", env="CartPole-v9")


def test_dqn_refuses_continuous_actions():
    with pytest.raises(UsageError, match="discrete actions"):
        taskzoo.run("cartpole", env="Pendulum-v1", algo="dqn", total_timesteps=100)


def test_runner_restore_replays_to_the_same_state():
    runner = envs.VecRunner("CartPole-v1", 3, seed=7)
    rng = np.random.default_rng(0)
    for _ in range(60):  # long enough for some episodes to end and reset
        runner.step(rng.integers(0, 2, 3))
    state = runner.state_dict()
    twin = envs.VecRunner("CartPole-v1", 3, seed=7)
    twin.restore(state)
    assert np.array_equal(twin.obs, runner.obs)
    assert twin.env_steps == runner.env_steps == 180
    assert twin.episodes == runner.episodes and len(runner.episodes) > 0
    actions = rng.integers(0, 2, 3)
    assert np.array_equal(twin.step(actions)[0], runner.step(actions)[0])


def test_n_step_transitions_sum_discounted_rewards_and_stop_at_episode_ends():
    from taskzoo.rl.sources import ReplaySource

    runner = envs.VecRunner("CartPole-v1", 2, seed=0)
    model = build("mlp_qnet", obs_shape=(4,), num_actions=2, hidden=(8,))
    src = ReplaySource(runner, model, envs.spaces_of("CartPole-v1"), buffer_size=64, batch_size=4,
                       learning_starts=0, train_freq=1, gradient_steps=1, gamma=0.5,
                       target_update=1, double=False, eps_start=1.0, eps_end=1.0,
                       eps_fraction=1.0, total_timesteps=100, seed=0, n_step=3)
    obs = [np.full((2, 4), float(t)) for t in range(6)]
    # env 0 runs on; env 1 terminates at t=3 (reward index 3) and is truncated at t=5
    rewards = [np.array([1.0, 10.0]), np.array([2.0, 20.0]), np.array([4.0, 40.0]),
               np.array([8.0, 80.0]), np.array([16.0, 160.0]), np.array([32.0, 320.0])]
    term = [np.array([False, t == 3]) for t in range(6)]
    trunc = [np.array([False, t == 5]) for t in range(6)]
    for t in range(6):
        nxt = obs[t] + 1
        src._store(obs[t], np.array([0, 1]), (nxt, rewards[t], term[t], trunc[t], nxt))
    rows = {(int(src.obs[i, 0]), int(src.act[i])): (float(src.rew[i]), float(src.next_obs[i, 0]),
                                                    float(src.term[i]), float(src.disc[i]))
            for i in range(src.pos)}
    # env 0 (action 0): full 3-step returns, bootstrapped gamma^3 from 3 steps later
    assert rows[(0, 0)] == (1 + 0.5 * 2 + 0.25 * 4, 3.0, 0.0, 0.125)
    assert rows[(3, 0)] == (8 + 0.5 * 16 + 0.25 * 32, 6.0, 0.0, 0.125)
    assert (4, 0) not in rows  # its 3-step return is not complete yet
    # env 1 (action 1): the termination at t=3 cuts the returns short and flushes them all
    assert rows[(1, 1)] == (20 + 0.5 * 40 + 0.25 * 80, 4.0, 1.0, 0.125)
    assert rows[(2, 1)] == (40 + 0.5 * 80, 4.0, 1.0, 0.25)
    assert rows[(3, 1)] == (80.0, 4.0, 1.0, 0.5)
    # the truncation at t=5 flushes too, but bootstraps (term 0) from the real last state
    assert rows[(4, 1)] == (160 + 0.5 * 320, 6.0, 0.0, 0.25)
    assert rows[(5, 1)] == (320.0, 6.0, 0.0, 0.5)
    assert src.pos == 4 + 6


def test_solved_summary_takes_the_first_solved_validation():
    history = [{"val/mean_return": 100.0, "train/env_steps": 1000, "train/time_s": 1.0},
               {"val/mean_return": 480.0, "train/env_steps": 2000, "train/time_s": 2.5},
               {"val/mean_return": 500.0, "train/env_steps": 3000, "train/time_s": 4.0}]
    assert solved_summary(history, 475.0) == {"train/solved_at_step": 2000.0,
                                              "train/solved_time_s": 2.5}
    assert solved_summary(history, 501.0)["train/solved_at_step"] == -1.0
    assert solved_summary(history, None)["train/solved_time_s"] == -1.0


# ---------------------------------------------------------------- deep agents
def test_ppo_learns_cartpole_and_writes_its_reports(tmp_path):
    res = taskzoo.run("cartpole", out=tmp_path / "ppo", progress=False, seed=0, **PPO_SMALL)
    m = res.metrics
    # a random policy lasts ~22 steps; 8k steps of PPO already balance far longer
    assert m["eval/mean_return"] > 60, m
    assert m["train/env_steps"] == 8192
    # the reported figures are those of the greedy policy on the evaluation's own seeds
    returns, lengths = envs.run_episodes(
        lambda obs: res.model(torch.as_tensor(obs, dtype=torch.float32))[0].argmax(-1).numpy(),
        "CartPole-v1", 3, seed=20_000)
    assert m["eval/mean_return"] == pytest.approx(returns.mean())
    assert m["eval/std_return"] == pytest.approx(returns.std())
    assert m["eval/mean_length"] == pytest.approx(lengths.mean())
    png = (tmp_path / "ppo" / "learning_curve.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 5000
    # agent.gif: the final agent's first evaluation episode, its reset frame and every step
    from PIL import Image

    gif = Image.open(tmp_path / "ppo" / "agent.gif")
    assert gif.format == "GIF" and gif.size == (600, 400)
    # at CartPole's 50 fps (Pillow merges repeated frames and adds up their durations)
    total_ms = 0
    for i in range(gif.n_frames):
        gif.seek(i)
        total_ms += gif.info["duration"]
    assert total_ms == 20 * (min(int(lengths[0]), 300) + 1)
    records = [json.loads(x) for x in (tmp_path / "ppo" / "metrics.jsonl").read_text().splitlines()]
    vals = [r for r in records if "val/mean_return" in r]
    # validations every 1024 environment steps (the last one is the end of training)
    assert [r["train/env_steps"] for r in vals][:3] == [1024.0, 2048.0, 3072.0]
    assert any("train/approx_kl" in r and "rollout/ep_return_mean" in r for r in records)
    agent = taskzoo.load_run(tmp_path / "ppo")
    # a pole falling right (angle, angular velocity > 0) needs a push right (1), and left (0)
    assert agent([[0.0, 0.0, 0.1, 0.5], [0.0, 0.0, -0.1, -0.5]]) == [1, 0]
    obs = np.random.default_rng(0).normal(0, 0.1, (32, 4))
    head, _ = res.model(torch.as_tensor(obs, dtype=torch.float32))
    assert agent(obs.tolist()) == head.argmax(-1).tolist()  # the greedy action, batched
    with pytest.raises(UsageError, match=r"shape \(4,\)"):
        agent([1.0, 2.0])


def test_stop_when_solved_ends_training_at_the_first_solved_validation(tmp_path):
    res = taskzoo.run("cartpole", out=tmp_path / "s", progress=False, stop_when_solved=True,
                      solved_return=5.0, **PPO_SMALL)
    assert res.metrics["train/solved_at_step"] == 1024.0
    assert res.metrics["train/env_steps"] == 1024.0  # stopped right there


@pytest.mark.parametrize("recipe, kill_at", [(PPO_SMALL, 170), (DQN_SMALL, 150)],
                         ids=["ppo", "dqn"])
def test_rl_resume_after_a_crash_equals_an_unbroken_run(tmp_path, recipe, kill_at):
    full = taskzoo.run("cartpole", out=tmp_path / "full", progress=False, seed=3, **recipe)
    with pytest.raises(Killed):
        taskzoo.run("cartpole", out=tmp_path / "cut", progress=False, seed=3,
                    callbacks=[KillAt(kill_at)], **recipe)
    assert (tmp_path / "cut" / "last.ckpt").exists()
    resumed = taskzoo.run("cartpole", out=tmp_path / "cut", resume=True, progress=False, seed=3,
                          **recipe)
    assert_same_weights(tmp_path / "full" / "best.safetensors", tmp_path / "cut" / "best.safetensors")
    assert _figures(full.metrics) == _figures(resumed.metrics)
    log = lambda d: (d / "metrics.jsonl").read_text()  # noqa: E731
    assert log(tmp_path / "full") == log(tmp_path / "cut")


def test_dqn_trains_through_the_replay_source(tmp_path):
    res = taskzoo.run("cartpole", out=tmp_path / "dqn", progress=False, **DQN_SMALL)
    m = res.metrics
    # 3000 steps in phases of 64 after 500 warm-up steps: (47 - 7) phases x 16 updates
    assert m["train/steps"] == 40 * 16
    # a constant action keeps the pole up for ~9 steps: the learned policy must do far better
    # on the very episodes of the evaluation (seeds 20000 + 100 * seed)
    const = max(envs.run_episodes(lambda obs, a=a: np.full(len(obs), a), "CartPole-v1", 3,
                                  seed=20_000)[0].mean() for a in (0, 1))
    assert const < 12 and m["eval/mean_return"] > 2 * const, (m["eval/mean_return"], const)
    records = [json.loads(x) for x in (tmp_path / "dqn" / "metrics.jsonl").read_text().splitlines()]
    eps = [r["rollout/epsilon"] for r in records if "rollout/epsilon" in r]
    assert eps == sorted(eps, reverse=True) and eps[-1] == pytest.approx(0.04)  # the preset's final rate


# ---------------------------------------------------------------- tabular MDPs
def test_value_iteration_step_is_one_bellman_sweep(tmp_path):
    res = taskzoo.run("frozenlake", out=tmp_path / "vi1", progress=False, sweeps=1,
                      eval_episodes=5, val_episodes=5)
    data = mdp_data("FrozenLake-v1", 1, None)
    mdp = data.mdp
    expected = (mdp.prob * (mdp.rew + 0.999 * (1 - mdp.done) * 0.0)).sum(-1)  # from Q = 0
    assert torch.allclose(res.model.q.detach(), expected)


def test_value_iteration_is_optimal_on_frozenlake_and_taxi(tmp_path):
    lake = taskzoo.run("frozenlake", out=tmp_path / "lake", progress=False, eval_episodes=200)
    m = lake.metrics
    # the exact optimum of P(goal within 100 steps) from the start state is ~0.744
    assert 0.70 < m["eval/optimal_return"] < 0.80
    assert m["eval/optimality"] > 0.99
    assert abs(m["eval/mean_return"] - m["eval/expected_return"]) < 0.1  # episodes agree
    taxi = taskzoo.run("taxi", out=tmp_path / "taxi", progress=False, eval_episodes=50)
    assert taxi.metrics["eval/optimality"] == pytest.approx(1.0, abs=1e-9)
    for name, res in (("frozenlake", lake), ("taxi", taxi)):  # the declared ceilings are true
        ref = next(r for r in resolve_task(name).references if r.metric == "eval/expected_return")
        assert ref.value == pytest.approx(res.metrics["eval/optimal_return"], abs=1e-4)
    assert (tmp_path / "taxi" / "learning_curve.png").read_bytes().startswith(b"\x89PNG")


def _one_q_learning_phase(tmp_path, env: str, n_envs: int, lr: float):
    """Train a random Q-table for one vector step; (table before, table after, the source)."""
    from taskzoo.api import make_config, resolve_task
    from taskzoo.runtime import Runtime
    from taskzoo.train.trainer import Trainer

    cls = resolve_task(env)
    cfg = make_config(cls, {"algo": "q_learning", "n_envs": n_envs, "total_timesteps": n_envs,
                            "lr": lr, "eval_freq": 10**6})
    task = cls(cfg, Runtime.create(device="cpu"))
    data = task.build_data()
    model = task.build_model(data)
    with torch.no_grad():
        model.q.uniform_(-1, 1, generator=torch.Generator().manual_seed(0))
    before = model.q.detach().clone()
    source = task.batches(data, model)
    fit = Trainer(task.train_config(source), task.runtime, progress=False).fit(
        task.step, model, source, None, tmp_path)
    assert fit.state.step == n_envs  # one optimizer step per transition
    return before, model.q.detach(), source, cfg.gamma


def _textbook(before, source, gamma, lr):
    """Q[s,a] += lr (r + gamma max Q[s'] - Q[s,a]) for each transition, in environment order."""
    idx = source.last
    s, s2 = source.obs[idx].argmax(-1), source.next_obs[idx].argmax(-1)
    a, r, term = source.act[idx], source.rew[idx].double(), source.term[idx].double()
    q = before.clone()
    for i in range(len(idx)):
        target = r[i] + gamma * (1 - term[i]) * q[s2[i]].max()
        q[s[i], a[i]] += lr * (target - q[s[i], a[i]])
    return q, list(zip(s.tolist(), a.tolist()))


def test_q_learning_step_is_the_tabular_update(tmp_path):
    """Each Trainer step with SGD(lr=alpha) is Q[s,a] += alpha (r + g max Q[s'] - Q[s,a])."""
    before, after, source, gamma = _one_q_learning_phase(tmp_path, "taxi", 4, 0.5)
    expected, _ = _textbook(before, source, gamma, 0.5)
    torch.testing.assert_close(after, expected, rtol=0, atol=1e-12)
    assert not torch.equal(after, before)


def test_q_learning_applies_duplicate_pairs_one_after_another(tmp_path):
    """Eight FrozenLake envs all start in state 0 and there are 4 actions, so one vector step
    holds the same (s, a) more than once; the textbook applies them in turn (a batch would
    sum their TD errors: 2 duplicates at alpha 0.5 would step a full TD error)."""
    before, after, source, gamma = _one_q_learning_phase(tmp_path, "frozenlake", 8, 0.5)
    expected, pairs = _textbook(before, source, gamma, 0.5)
    assert len(set(pairs)) < len(pairs)  # duplicates present
    torch.testing.assert_close(after, expected, rtol=0, atol=1e-12)


def test_exact_policy_evaluation_matches_monte_carlo():
    data = mdp_data("FrozenLake-v1", 1, None)
    always_left = torch.zeros(16, dtype=torch.long)
    exact = expected_return(data.mdp, data.isd, data.horizon, always_left)
    returns, _ = envs.run_episodes(lambda obs: np.zeros(len(obs), dtype=np.int64),
                                   "FrozenLake-v1", 400, seed=0)
    assert abs(returns.mean() - exact) < 0.03 + 3 * np.sqrt(exact * (1 - exact) / 400)


def test_tabular_refuses_an_env_without_a_model():
    with pytest.raises(UsageError, match="exposes no model"):
        taskzoo.run("frozenlake", env="CartPole-v1")


def test_cli_unknown_env_is_one_line_and_exit_2(capsys):
    assert main(["run", "cartpole", "env=CartPol-v1", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "Did you mean 'CartPole-v1'" in err and "Traceback" not in err


def test_json_true_and_false_are_not_states_or_observations(capsys):
    """issue 28 case 16: `taskzoo predict frozenlake true` was read as state 1."""
    lake = taskzoo.load("frozenlake", device="cpu")
    cart = taskzoo.load("cartpole", device="cpu")
    for agent, bad in [(lake, "true"), (lake, "false"), (lake, True), (lake, "[1, false]"),
                       (lake, np.array([True])), (lake, torch.tensor(False)),
                       (cart, "[0, 0, 0, true]"), (cart, [[0.0, 0.0, 0.0, False]])]:
        with pytest.raises(UsageError, match=r"takes (a state number 0\.\.15|a JSON array of 4)"):
            agent(bad)
    assert lake("1") == lake(1) == lake([1])  # a state number still is one
    assert main(["predict", "frozenlake", "true"]) == 2
    err = capsys.readouterr().err
    assert "FrozenLake-v1 takes a state number 0..15" in err and err.count("\n") == 1, err


# ---------------------------------------------------------------- DDP shards, devices
@pytest.mark.parametrize("algo", ["ppo", "dqn"])
def test_rl_processes_step_their_own_envs_and_share_the_budget(algo):
    """Under DDP each rank steps differently seeded environments and collects half of the
    environment steps; schedules count the steps of all ranks (rank 0 = a single run)."""
    from taskzoo.api import make_config, resolve_task
    from taskzoo.runtime import Runtime
    from taskzoo.train.types import TrainState

    cls = resolve_task("cartpole")
    recipe = DQN_SMALL if algo == "dqn" else PPO_SMALL
    cfg = make_config(cls, {**recipe, "learning_starts": 0} if algo == "dqn" else recipe)

    def source(runtime):
        task = cls(cfg, runtime)
        data = task.build_data()
        model = task.build_model(data)
        src = task.batches(data, model)
        src.setup(model, runtime)
        return src

    single = source(Runtime.create(device="cpu"))
    ranks = [source(Runtime(device=torch.device("cpu"), world_size=2, rank=r)) for r in (0, 1)]
    assert np.array_equal(ranks[0].runner.obs, single.runner.obs)
    assert not np.array_equal(ranks[0].runner.obs, ranks[1].runner.obs)
    # half the optimizer steps each, rounded up to whole rollouts / training phases
    assert ranks[0].total_steps == ranks[1].total_steps
    assert 0 <= 2 * ranks[0].total_steps - single.total_steps <= 2 * single.steps_per_epoch
    for src in ranks:
        next(iter(src.batches(TrainState())))  # one rollout or training phase
    assert ranks[0].env_steps == 2 * ranks[0].runner.env_steps
    assert not np.array_equal(ranks[0].runner.obs, ranks[1].runner.obs)


@pytest.mark.gpu
def test_dqn_trains_with_its_q_network_on_cuda(tmp_path):
    """The target network is copied from the model once it is on the GPU: a copy made on the
    CPU would make the first TD target mix devices and crash."""
    res = taskzoo.run("cartpole", device="cuda", out=tmp_path / "dqn", progress=False,
                      **DQN_SMALL)
    assert next(res.model.parameters()).device.type == "cuda"
    assert res.metrics["train/steps"] == 40 * 16 and np.isfinite(res.metrics["eval/mean_return"])
    obs = [[0.0, 0.0, 0.1, 0.5], [0.0, 0.0, -0.1, -0.5]]
    q = res.model(torch.tensor(obs, device="cuda"))
    assert res.predictor(obs) == q.argmax(-1).tolist()
