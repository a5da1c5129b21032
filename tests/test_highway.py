"""The highway task: highway-env found by its id, its config passed through, the driving
figures beside the return, restore and `taskzoo play --record`."""

from __future__ import annotations

import numpy as np
import pytest

import taskzoo
from taskzoo.errors import ConfigError, UnknownNameError

pytest.importorskip("highway_env", reason="the highway task needs highway-env (pip install "
                    "-e '.[drive]')")

QUICK = dict(total_timesteps=300, learning_starts=100, eval_freq=300, val_episodes=2,
             eval_episodes=3)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("highway") / "run"
    return taskzoo.run("highway", out=out, progress=False,
                       env_config='{"lanes_count": 3, "vehicles_count": 20}', **QUICK)


def test_a_short_run_reports_the_driving_figures(run):
    m = run.metrics
    assert m["train/env_steps"] >= 300 and run.config.algo == "dqn"
    assert 0.0 <= m["eval/crash_rate"] <= 1.0 and m["eval/crash_rate"] * 3 == round(
        m["eval/crash_rate"] * 3)  # a share of 3 episodes
    assert 15.0 <= m["eval/mean_speed"] <= 45.0  # m/s: highway-env's speeds lie in 20-30
    assert 1 <= m["eval/mean_length"] <= 30 and m["eval/mean_return"] > 0
    assert (run.run_dir / "learning_curve.png").is_file()
    from PIL import Image

    gif = Image.open(run.run_dir / "agent.gif")  # the final agent driving, as `play` shows it
    assert gif.format == "GIF" and gif.n_frames >= 2
    frame = np.asarray(gif.convert("RGB"))
    assert frame.std() > 10  # the road and the cars, not a blank offscreen surface


def test_the_env_config_reaches_the_environment_and_the_restored_agent(run):
    agent = taskzoo.load_run(run.run_dir)
    assert agent.env_kwargs == {"config": {"lanes_count": 3, "vehicles_count": 20}}
    from taskzoo.rl import envs

    env = envs.make_env(agent.env_id, **agent.env_kwargs)
    try:
        assert env.unwrapped.config["lanes_count"] == 3
        obs, _ = env.reset(seed=0)
    finally:
        env.close()
    assert obs.shape == (5, 5)
    action = agent([obs.tolist()])
    assert action[0] in range(5)


def test_play_records_a_gif_of_the_ego_car(run, tmp_path):
    from taskzoo.rl.play import play

    target = tmp_path / "highway.gif"
    play(run.run_dir, episodes=1, record=str(target), max_steps=5)
    from PIL import Image

    with Image.open(target) as gif:
        assert gif.n_frames >= 2 and gif.size[0] > 100
        frame = np.asarray(gif.convert("RGB"))
    assert frame.std() > 5  # a drawn road, not a blank frame


def test_bad_env_options_name_the_problem():
    with pytest.raises(ConfigError, match="env_config='lanes=3' is not JSON"):
        taskzoo.run("highway", env_config="lanes=3", **QUICK)
    with pytest.raises(ConfigError, match="expected a JSON object"):
        taskzoo.run("highway", env_config="[3]", **QUICK)
    with pytest.raises(UnknownNameError, match="Did you mean 'highway-fast-v0'"):
        taskzoo.run("highway", env="highway-fats-v0", **QUICK)
