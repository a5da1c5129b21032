"""The minatar task: MinAtar's games from pixels, the paper's network, byte frames in replay."""

from __future__ import annotations

import importlib.util
import io
import json

import numpy as np
import pytest
import torch

import taskzoo
from taskzoo.errors import ConfigError, UsageError

pytestmark = pytest.mark.skipif(importlib.util.find_spec("minatar") is None,
                                reason="MinAtar (GPL-3.0) is an optional extra: "
                                       'pip install "taskzoo[minatar]"')


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "breakout"
    return taskzoo.run("minatar", out=out, progress=False, seed=3, total_timesteps=1_500,
                       learning_starts=500, eval_freq=1_000, val_episodes=2, eval_episodes=3,
                       buffer_size=2_000)


def test_run_trains_the_papers_network_on_bytes(quick_run):
    from taskzoo.models.policy import MinAtarCNN

    metrics, model = quick_run.metrics, quick_run.model
    assert metrics["train/env_steps"] >= 1_500
    assert np.isfinite(metrics["eval/mean_return"]) and metrics["eval/mean_length"] > 0
    enc = model.encoder
    assert isinstance(enc, MinAtarCNN)
    conv = enc.conv[0]
    assert (conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride) == (4, 16, (3, 3), (1, 1))
    # the paper's sizes: conv 16x3x3 over 4 channels, 1,024 -> 128 -> 6 actions
    assert sum(p.numel() for p in model.parameters()) == (4 * 9 * 16 + 16) + (1024 * 128 + 128) + (128 * 6 + 6)
    data = json.loads((quick_run.run_dir / "data.json").read_text())
    assert data["env"] == "MinAtar/Breakout-v1"
    assert data["env_kwargs"] == {"use_minimal_action_set": False}  # all 6 actions, as the paper


def test_replay_keeps_frames_as_bytes():
    from taskzoo.rl import envs
    from taskzoo.rl.sources import ReplaySource

    env_id = "MinAtar/SpaceInvaders-v1"
    spaces = envs.spaces_of(env_id)
    assert spaces.obs_shape == (10, 10, 6)
    net = taskzoo.models.build("minatar_qnet", obs_shape=spaces.obs_shape,
                               num_actions=spaces.num_actions)
    src = ReplaySource(envs.VecRunner(env_id, 2, 0), net, spaces, buffer_size=64, batch_size=8,
                       learning_starts=0, train_freq=4, gradient_steps=1, gamma=0.99,
                       target_update=10, double=False, eps_start=1.0, eps_end=0.1,
                       eps_fraction=0.5, total_timesteps=100, seed=0)
    src._collect(8)
    assert src.obs.dtype == torch.uint8 and src.next_obs.dtype == torch.uint8
    assert int(src.obs[:16].max()) == 1 and int(src.obs[:16].sum()) > 0  # 0/1 object channels
    batch = src._sample(0)
    assert batch["obs"].dtype == torch.uint8 and batch["target"].dtype == torch.float32
    assert net(batch["obs"]).shape == (8, spaces.num_actions)


def test_run_dir_holds_a_gif_of_the_final_agent(quick_run):
    from PIL import Image

    gif = quick_run.run_dir / "agent.gif"
    im = Image.open(io.BytesIO(gif.read_bytes()))
    assert im.format == "GIF" and im.n_frames >= 2
    assert min(im.size) >= 160  # the 10x10 grid enlarged by whole pixels
    assert (quick_run.run_dir / "learning_curve.png").stat().st_size > 0


def test_agent_acts_on_byte_and_bool_observations(quick_run):
    agent = taskzoo.load_run(quick_run.run_dir, device="cpu")
    obs = np.zeros((10, 10, 4), dtype=bool)
    obs[9, 4, 0] = obs[3, 2, 1] = True
    actions = agent(obs)
    assert len(actions) == 1 and 0 <= actions[0] < 6
    assert agent(obs.astype(np.uint8)) == actions
    assert agent(np.stack([obs, obs])) == actions * 2


def test_config_errors_name_what_is_valid():
    with pytest.raises(ConfigError, match="space_invaders"):
        taskzoo.run("minatar", game="space_invader", progress=False)
    with pytest.raises(ConfigError, match="game="):
        taskzoo.run("minatar", env="CartPole-v1", progress=False)


def test_missing_minatar_names_the_extra(hide_package):
    hide_package("minatar")
    from taskzoo.tasks.minatar.task import MinAtar, MinAtarConfig

    task = MinAtar(MinAtarConfig())
    with pytest.raises(UsageError, match=r"taskzoo\[minatar\]"):
        task.build_data()
