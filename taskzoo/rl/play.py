"""Watch a trained agent: play greedy episodes of a finished RL run and, optionally, record
them as an animated GIF (Pillow) or an MP4 (imageio with imageio-ffmpeg).

    taskzoo play cartpole --from runs/cartpole --episodes 3 --record cartpole.gif
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import sys
import warnings
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from taskzoo.errors import ConfigError, UsageError, did_you_mean
from taskzoo.files import atomic_path
from taskzoo.rl.envs import make_env

RECORD_FORMATS = (".gif", ".mp4")
MAX_GIF_FRAMES = 600  # bounds memory while playing (~150 MB of CartPole frames) and file size
MIN_FRAME_SIDE = 160  # smaller renders (MinAtar's 10x10 grids) are enlarged, pixels kept square


def frame_of(env: Any) -> np.ndarray:
    """The env's rgb_array render as uint8 HxWx3; a tiny one enlarged by whole pixels, a float
    one in [0, 1] (MinAtar's palette) scaled to bytes."""
    with warnings.catch_warnings():  # gymnasium's checker on renders of float arrays (MinAtar)
        warnings.simplefilter("ignore", UserWarning)
        rgb = np.asarray(env.render())
    if rgb.dtype != np.uint8:
        rgb = (np.clip(rgb, 0.0, 1.0) * 255).round().astype(np.uint8)
    side = max(rgb.shape[:2])
    if side < MIN_FRAME_SIDE:
        k = -(-MIN_FRAME_SIDE // side)
        rgb = rgb.repeat(k, axis=0).repeat(k, axis=1)
    return rgb


@contextlib.contextmanager
def headless_video() -> Any:
    """Offscreen rendering where there is no display, for the duration: without it SDL prints
    an XDG_RUNTIME_DIR error. "offscreen", not "dummy": under dummy, highway-env's pygame
    frames are blank. The variable is restored after, so the caller's own windows are untouched."""
    needed = sys.platform.startswith("linux") and not (os.environ.get("DISPLAY")
                                                       or os.environ.get("WAYLAND_DISPLAY"))
    before = os.environ.get("SDL_VIDEODRIVER")
    if needed and before is None:
        os.environ["SDL_VIDEODRIVER"] = "offscreen"
    try:
        yield
    finally:
        if needed and before is None:
            os.environ.pop("SDL_VIDEODRIVER", None)


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


@runtime_checkable
class Playable(Protocol):
    """What `play` steps an environment with: a predictor that plays (the RL tasks' agent
    declares it), naming its gymnasium environment and acting greedily on observations."""

    env_id: str

    def act(self, obs: np.ndarray) -> np.ndarray:
        """A batch of observations -> a batch of actions, as numpy arrays."""
        ...


class _Recorder:
    """The frames of the played episodes: streamed to an MP4, or kept (thinned past
    MAX_GIF_FRAMES) and written as one GIF at the end."""

    def __init__(self, fmt: str | None, record: str | os.PathLike[str] | io.BytesIO | None,
                 rate: float, episodes: int, stack: contextlib.ExitStack) -> None:
        self.fmt, self.record, self.rate, self.stack = fmt, record, rate, stack
        self.mp4 = stack.enter_context(atomic_path(str(record))) if fmt == ".mp4" else None
        self.writer: Any = None  # imageio-ffmpeg's frame sink, opened once the frame size is known
        self.frames: list[tuple[int, Any]] = []  # (episode, frame) of the GIF
        self.counts = [0] * episodes  # frames streamed to the MP4, per episode
        self.stride, self.t = 1, 0

    def capture(self, env: Any, ep: int) -> None:
        """Keep the env's current frame (every stride-th step) as one of episode `ep`."""
        if self.fmt and self.t % self.stride == 0:
            rgb = frame_of(env)
            if self.mp4 is not None:
                if self.writer is None:
                    self.writer = _mp4_writer(self.mp4, rgb.shape, self.rate)
                    self.stack.callback(self.writer.close)  # before atomic_path renames the file
                self.writer.send(np.ascontiguousarray(rgb))
                self.counts[ep] += 1
            else:
                from PIL import Image

                # quantize now: one byte a pixel keeps 600 frames in ~150 MB, not 430
                self.frames.append((ep, Image.fromarray(rgb).quantize(256)))
                if len(self.frames) > MAX_GIF_FRAMES:  # thin out what we have, keep the grid
                    self.frames, self.stride = self.frames[::2], self.stride * 2
        self.t += 1

    def finish(self) -> list[int]:
        """Write the GIF (an MP4 is written as it goes); the frames of each episode."""
        if self.fmt == ".gif":
            # GIF delays are in 1/100 s, and viewers slow anything under 2/100 s to 1/10 s
            duration = max(20, round(1000 * self.stride / self.rate / 10) * 10)
            if isinstance(self.record, io.BytesIO):
                _save_gif([f for _, f in self.frames], duration, self.record)
            else:
                with atomic_path(str(self.record)) as tmp:
                    _save_gif([f for _, f in self.frames], duration, tmp)
            return [sum(1 for e, _ in self.frames if e == ep) for ep in range(len(self.counts))]
        return self.counts


def _save_gif(frames: list[Any], duration: int, out: Any) -> None:
    frames[0].save(out, format="GIF", save_all=True, loop=0, duration=duration,
                   append_images=frames[1:])


def episode_gif(agent: Playable, *, seed: int = 0, max_steps: int = 300) -> bytes:
    """One greedy episode of `agent` from `reset(seed=seed)`, at most `max_steps` steps, as
    GIF bytes at the env's real speed (a run directory's agent.gif).

    >>> gif = episode_gif(taskzoo.load_run("runs/cartpole"), seed=0)   # doctest: +SKIP
    """
    buffer = io.BytesIO()
    with headless_video(), contextlib.ExitStack() as stack:
        env = make_env(agent.env_id, render_mode="rgb_array", **getattr(agent, "env_kwargs", {}))
        stack.callback(env.close)
        rate = float(env.metadata.get("render_fps") or 30)
        recorder = _Recorder(".gif", buffer, rate, 1, stack)
        _episode(env, agent, seed, max_steps, partial(recorder.capture, env, 0))
        recorder.finish()
    return buffer.getvalue()


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
    _check_settings(episodes, fps, max_steps)
    fmt = _record_format(record) if record is not None else None
    agent = _load_agent(run_dir)
    with contextlib.ExitStack() as stack:
        if fmt:
            stack.enter_context(headless_video())
        env = make_env(agent.env_id, render_mode="rgb_array" if fmt else None,
                       **getattr(agent, "env_kwargs", {}))
        stack.callback(env.close)
        rate = float(fps or env.metadata.get("render_fps") or 30)
        recorder = _Recorder(fmt, record, rate, episodes, stack)
        results = [_episode(env, agent, seed + ep, max_steps, partial(recorder.capture, env, ep))
                   for ep in range(episodes)]
        counts = recorder.finish()
    if fmt:
        for res, n in zip(results, counts):
            res["frames"] = n
    return results


def _check_settings(episodes: int, fps: float | None, max_steps: int | None) -> None:
    if episodes < 1:
        raise ConfigError(f"episodes={episodes}: expected at least 1")
    if fps is not None and fps <= 0:
        raise ConfigError(f"fps={fps}: expected a positive number")
    if max_steps is not None and max_steps < 1:
        raise ConfigError(f"max_steps={max_steps}: expected a positive integer")


def _load_agent(run_dir: str | os.PathLike[str]) -> Playable:
    """The run's predictor, which must be Playable (a run of an RL task)."""
    from taskzoo.api import load_run

    agent = load_run(run_dir, device="cpu")  # batch-of-one steps beside the env: the CPU wins
    if not isinstance(agent, Playable) or not agent.env_id:
        raise UsageError(f"{run_dir} is not a run of an RL task (its predictor has no "
                         f"policy to play); `taskzoo list` shows the RL tasks")
    return agent


def _episode(env: Any, agent: Playable, seed: int, max_steps: int | None,
             capture: Callable[[], None]) -> dict[str, Any]:
    """One greedy episode from `env.reset(seed=seed)`; `capture()` after the reset and each step."""
    obs, _ = env.reset(seed=seed)
    ret, length, done = 0.0, 0, False
    capture()
    while not done and (max_steps is None or length < max_steps):
        obs, reward, term, trunc, _ = env.step(agent.act(np.asarray(obs)[None])[0])
        ret, length, done = ret + float(reward), length + 1, bool(term or trunc)
        capture()
    return {"return": ret, "length": length}
