"""Watch a trained agent: play greedy episodes of a finished RL run and, optionally, record
them as an animated GIF (Pillow) or an MP4 (imageio with imageio-ffmpeg).

    taskzoo play cartpole --from runs/cartpole --episodes 3 --record cartpole.gif
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from taskzoo.errors import ConfigError, UsageError, did_you_mean
from taskzoo.files import atomic_path
from taskzoo.rl.envs import make_env

RECORD_FORMATS = (".gif", ".mp4")
MAX_GIF_FRAMES = 600  # bounds memory while playing (~150 MB of CartPole frames) and file size


def _record_format(record: str | os.PathLike[str]) -> str:
    """".gif" or ".mp4"; checked before anything is played so a typo costs nothing."""
    suffix = Path(record).suffix.lower()
    if suffix not in RECORD_FORMATS:
        raise UsageError(f"Cannot record to '{record}': unknown extension '{suffix}'."
                         f"{did_you_mean(suffix, RECORD_FORMATS)} "
                         f"Valid extensions: {', '.join(RECORD_FORMATS)}")
    if suffix == ".mp4" and importlib.util.find_spec("imageio_ffmpeg") is None:
        raise UsageError("Recording .mp4 needs imageio-ffmpeg: `pip install imageio-ffmpeg`, "
                         "or record a .gif instead")
    return suffix


def _mp4_writer(path: Path, shape: tuple[int, ...], fps: float) -> Any:
    import imageio_ffmpeg

    # the temp file ends in .tmp, so name the container and codec; macro_block_size=2 keeps
    # the env's frame size (yuv420p needs even sides) instead of rescaling to multiples of 16
    writer = imageio_ffmpeg.write_frames(str(path), (shape[1], shape[0]), fps=fps,
                                         codec="libx264", macro_block_size=2,
                                         output_params=["-f", "mp4"])
    writer.send(None)  # start the generator (and ffmpeg)
    return writer


def play(run_dir: str | os.PathLike[str], *, episodes: int = 3,
         record: str | os.PathLike[str] | None = None, seed: int = 0, fps: float | None = None,
         max_steps: int | None = None) -> list[dict[str, Any]]:
    """Play `episodes` greedy episodes of a finished run (episode i seeded `seed + i`) and
    return one {"return", "length"} per episode ("frames" too when recording).

    `record` ("x.gif" or "x.mp4") writes every episode, one after the other, to one file,
    atomically. `fps` is the playback speed in environment steps per second (default the
    env's metadata render_fps, i.e. real time). A GIF keeps at most 600 frames: past that
    only every 2nd (then 4th, ...) step is kept and shown proportionally longer, so 3 full
    500-step CartPole episodes still play at real speed (about 1 KB a frame). An MP4 keeps
    every step. `max_steps` cuts episodes short (default: the env's own time limit).

    >>> taskzoo.rl.play.play("runs/cartpole", episodes=2)   # doctest: +SKIP
    [{'return': 500.0, 'length': 500}, {'return': 500.0, 'length': 500}]
    """
    from taskzoo.api import load_run

    if episodes < 1:
        raise ConfigError(f"episodes={episodes}: expected at least 1")
    if fps is not None and fps <= 0:
        raise ConfigError(f"fps={fps}: expected a positive number")
    if max_steps is not None and max_steps < 1:
        raise ConfigError(f"max_steps={max_steps}: expected a positive integer")
    fmt = _record_format(record) if record is not None else None
    if fmt and sys.platform.startswith("linux") and not (os.environ.get("DISPLAY")
                                                         or os.environ.get("WAYLAND_DISPLAY")):
        # offscreen rendering needs no display; without this SDL prints an XDG_RUNTIME_DIR error
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    agent = load_run(run_dir, device="cpu")  # batch-of-one steps beside the env: the CPU wins
    if not hasattr(agent, "act") or not getattr(agent, "env_id", None):
        raise UsageError(f"{run_dir} is not a run of an RL task (its predictor has no "
                         f"policy to play); `taskzoo list` shows the RL tasks")
    env = make_env(agent.env_id, render_mode="rgb_array" if fmt else None)
    with contextlib.ExitStack() as stack:
        stack.callback(env.close)
        rate = float(fps or env.metadata.get("render_fps") or 30)
        mp4 = stack.enter_context(atomic_path(str(record))) if fmt == ".mp4" else None
        writer: Any = None  # imageio-ffmpeg's frame sink, opened once the frame size is known
        frames: list[tuple[int, Any]] = []  # (episode, frame) of the GIF
        counts = [0] * episodes  # frames streamed to the MP4, per episode
        stride, t = 1, 0

        def capture(ep: int) -> None:
            nonlocal frames, stride, t, writer
            if fmt and t % stride == 0:
                rgb = np.asarray(env.render())
                if mp4 is not None:
                    if writer is None:
                        writer = _mp4_writer(mp4, rgb.shape, rate)
                        stack.callback(writer.close)  # before atomic_path renames the file
                    writer.send(np.ascontiguousarray(rgb))
                    counts[ep] += 1
                else:
                    from PIL import Image

                    # quantize now: one byte a pixel keeps 600 frames in ~150 MB, not 430
                    frames.append((ep, Image.fromarray(rgb).quantize(256)))
                    if len(frames) > MAX_GIF_FRAMES:  # thin out what we have, keep the grid
                        frames, stride = frames[::2], stride * 2
            t += 1

        results: list[dict[str, Any]] = []
        for ep in range(episodes):
            obs, _ = env.reset(seed=seed + ep)
            ret, length, done = 0.0, 0, False
            capture(ep)
            while not done and (max_steps is None or length < max_steps):
                obs, reward, term, trunc, _ = env.step(agent.act(np.asarray(obs)[None])[0])
                ret, length, done = ret + float(reward), length + 1, bool(term or trunc)
                capture(ep)
            results.append({"return": ret, "length": length})
        if fmt == ".gif":
            # GIF delays are in 1/100 s, and viewers slow anything under 2/100 s to 1/10 s
            duration = max(20, round(1000 * stride / rate / 10) * 10)
            with atomic_path(str(record)) as tmp:
                frames[0][1].save(tmp, format="GIF", save_all=True, loop=0, duration=duration,
                                  append_images=[f for _, f in frames[1:]])
            counts = [sum(1 for e, _ in frames if e == ep) for ep in range(episodes)]
    if fmt:
        for res, n in zip(results, counts):
            res["frames"] = n
    return results
