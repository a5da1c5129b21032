"""`taskzoo.rl.play` and `taskzoo play`: greedy episodes of a trained run, GIF/MP4 recording."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from PIL import Image

import taskzoo
from taskzoo.cli import main
from taskzoo.errors import CheckpointError, UsageError
from taskzoo.rl import play as play_mod
from taskzoo.rl.play import play


@pytest.fixture(scope="module")
def cartpole_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny PPO CartPole run (a few seconds): barely trained, but a real run directory."""
    out = tmp_path_factory.mktemp("cartpole_run")
    taskzoo.run("cartpole", out=str(out), total_timesteps=2000, eval_freq=1000, n_envs=4,
                val_episodes=2, eval_episodes=2, progress=False)
    return out


def test_play_returns_one_result_per_episode_and_is_seeded(cartpole_run: Path) -> None:
    results = play(cartpole_run, episodes=3, seed=5)
    assert len(results) == 3
    for res in results:
        assert set(res) == {"return", "length"}
        # CartPole pays 1 per step it survives, so the return equals the length
        assert res["return"] > 0 and res["return"] == res["length"]
    assert play(cartpole_run, episodes=3, seed=5) == results  # greedy + seeded = repeatable
    # episode i is seeded seed+i: starting one seed later shifts the episodes by one
    assert play(cartpole_run, episodes=2, seed=6) == results[1:]


def test_play_max_steps_cuts_episodes(cartpole_run: Path) -> None:
    results = play(cartpole_run, episodes=2, max_steps=3)
    assert [r["length"] for r in results] == [3, 3]


def test_record_gif_is_an_animated_looping_gif(cartpole_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "sub" / "cartpole.gif"
    results = play(cartpole_run, episodes=2, record=out, fps=25)
    # one frame after reset plus one per step, every episode
    assert [r["frames"] for r in results] == [r["length"] + 1 for r in results]
    with Image.open(out) as im:
        assert im.format == "GIF"
        assert im.size == (600, 400)  # CartPole's rgb_array frame
        # Pillow merges identical consecutive frames (adding their delays), never adds any
        assert 1 < im.n_frames <= sum(r["frames"] for r in results)
        assert im.info["loop"] == 0  # loops forever
        assert im.info["duration"] % 40 == 0  # 25 steps per second = 40 ms a frame
    assert [p.name for p in out.parent.iterdir()] == ["cartpole.gif"]  # no temp file left


def test_long_recordings_are_subsampled(cartpole_run: Path, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(play_mod, "MAX_GIF_FRAMES", 8)
    out = tmp_path / "short.gif"
    results = play(cartpole_run, episodes=3, record=out)
    steps = sum(r["length"] + 1 for r in results)  # frames a full recording would have
    # the stride doubles until the frames fit; every stride-th step is kept, across episodes
    stride = next(s for s in (2**k for k in range(20)) if math.ceil(steps / s) <= 8)
    assert stride > 1 and sum(r["frames"] for r in results) == math.ceil(steps / stride)
    with Image.open(out) as im:
        assert 1 < im.n_frames <= 8
        # each kept frame stands for `stride` steps at CartPole's 50 fps: real-time speed
        assert im.info["duration"] % (20 * stride) == 0


def test_unknown_extension_names_the_valid_ones(cartpole_run: Path, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"'\.avi'.*Valid extensions: \.gif, \.mp4"):
        play(cartpole_run, record=tmp_path / "x.avi")
    with pytest.raises(UsageError, match=r"Did you mean '\.gif'\?"):
        play(cartpole_run, record=tmp_path / "x.gf")
    assert list(tmp_path.iterdir()) == []


def test_mp4_without_imageio_ffmpeg_says_what_to_install(
        cartpole_run: Path, tmp_path: Path, hide_package) -> None:
    hide_package("imageio_ffmpeg")
    with pytest.raises(UsageError, match="pip install imageio-ffmpeg"):
        play(cartpole_run, record=tmp_path / "x.mp4")
    assert not (tmp_path / "x.mp4").exists()


def test_record_mp4(cartpole_run: Path, tmp_path: Path) -> None:
    ffmpeg = pytest.importorskip("imageio_ffmpeg")
    out = tmp_path / "cartpole.mp4"
    results = play(cartpole_run, episodes=2, record=out, fps=25)
    reader = ffmpeg.read_frames(str(out))
    meta = next(reader)
    assert meta["size"] == (600, 400) and meta["fps"] == 25
    assert sum(1 for _ in reader) == sum(r["frames"] for r in results)


def test_bad_run_dir_is_a_checkpoint_error(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="missing config.json"):
        play(tmp_path)


def test_cli_play_records_and_prints_each_episode(cartpole_run: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "x.gif"
    code = main(["play", "cartpole", "--from", str(cartpole_run), "--episodes", "1",
                 "--record", str(out)])
    lines = capsys.readouterr().out.splitlines()
    assert code == 0
    (expected,) = play(cartpole_run, episodes=1)
    assert lines == [f"episode 1: return {expected['return']:.1f}, {expected['length']} steps",
                     f"wrote {out} ({expected['length'] + 1} frames)"]
    with Image.open(out) as im:
        assert im.n_frames > 1


def test_cli_play_rejects_another_tasks_run(cartpole_run: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["play", "acrobot", "--from", str(cartpole_run)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip() == f"taskzoo: error: {cartpole_run} holds a 'cartpole' run, not 'acrobot'"
    assert main(["play", "cartpol", "--from", str(cartpole_run)]) == 2
    assert "Did you mean 'cartpole'?" in capsys.readouterr().err


def test_an_rl_run_is_playable(cartpole_run: Path) -> None:
    from taskzoo.rl.play import Playable

    agent = taskzoo.load_run(cartpole_run, device="cpu")
    assert isinstance(agent, Playable) and agent.env_id == "CartPole-v1"
    assert not isinstance(taskzoo.load("sentiment", device="cpu"), Playable)
