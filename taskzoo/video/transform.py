"""A video (or a folder of frames) mapped frame by frame through an image-to-image function
(a style network): decode -> transform in batches -> encode, with the same output rules as
`track_video` (temporary names renamed when complete; never over a file taskzoo did not
write unless `overwrite=True`).

    >>> from taskzoo.video.transform import map_video
    >>> map_video(stylise, "clip.mp4", "starry.mp4").format()             # doctest: +SKIP
    '377 frames in 41.0 s (9.2 fps end to end, transform 36.4 s) -> starry.mp4'
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from taskzoo.errors import InputError
from taskzoo.video import read_frames, video_info
from taskzoo.video.output import Writer, check_output, commit, discard, fit_frame

Transform = Callable[[list[np.ndarray]], list[np.ndarray]]


@dataclass
class MapSummary:
    """What `map_video` did; `format()` gives one line for a log."""

    frames: int
    seconds: float  # wall time of decode + transform + encode
    fps_end_to_end: float
    transform_seconds: float
    out_path: Path
    size: tuple[int, int]  # (width, height) of the output frames

    def format(self) -> str:
        return (f"{self.frames} frames in {self.seconds:.1f} s ({self.fps_end_to_end:.1f} fps "
                f"end to end, transform {self.transform_seconds:.1f} s) -> {self.out_path}")

    def to_json(self) -> dict[str, Any]:
        """The summary as JSON-able data (`taskzoo predict --json`)."""
        return {"frames": self.frames, "seconds": round(self.seconds, 3),
                "fps_end_to_end": round(self.fps_end_to_end, 2),
                "transform_seconds": round(self.transform_seconds, 3),
                "saved": str(self.out_path), "size": list(self.size)}


def map_video(transform: Transform, source: str | os.PathLike, out_path: str | os.PathLike, *,
              batch: int = 4, fps: float | None = None, max_frames: int | None = None,
              progress: bool | None = None, overwrite: bool = False) -> MapSummary:
    """Every frame of `source` through `transform` (RGB uint8 frames [H, W, 3] in, as many
    out), written to `out_path`: a VIDEO_SUFFIXES file, or else a folder of PNG frames. The
    output has the first frame's size: frames of another size (in or out) are scaled to it.
    The output is checked before anything is read (UsageError), as `track_video` checks it."""
    from tqdm import tqdm

    start = time.perf_counter()
    out = Path(out_path).expanduser()
    info = video_info(source, fps=fps)
    as_video, _ = check_output(out, overwrite=overwrite, record=False)
    tmp = out.parent / f".{out.stem}.{os.getpid()}.tmp{out.suffix if as_video else ''}"
    total = min(x for x in (info.frames, max_frames) if x is not None) if (info.frames or max_frames) else None
    writer: Writer | None = None
    frames_done, spent = 0, 0.0
    try:
        writer = Writer(tmp, as_video, info.fps, info.width, info.height)
        with tqdm(total=total, unit="frame", desc="video",
                  disable=not (sys.stderr.isatty() if progress is None else progress)) as bar:
            for _, frames in read_frames(source, batch=batch, max_frames=max_frames):
                frames = [f if f.shape[:2] == (info.height, info.width)
                          else fit_frame(f, info.width, info.height) for f in frames]
                t0 = time.perf_counter()
                made = list(transform(frames))
                spent += time.perf_counter() - t0
                if len(made) != len(frames):
                    raise InputError(f"transform returned {len(made)} frames for {len(frames)}")
                for frame in made:
                    frame = np.ascontiguousarray(frame, dtype=np.uint8)
                    if frame.shape[:2] != (info.height, info.width):
                        frame = fit_frame(frame, info.width, info.height)
                    writer.write(frame)
                frames_done += len(made)
                bar.update(len(made))
        if frames_done == 0:
            raise InputError(f"{info.path}: no frame could be decoded")
        writer.close()
        commit(tmp, out)
    except BaseException:
        discard(writer, tmp)
        raise
    seconds = time.perf_counter() - start
    return MapSummary(frames_done, seconds, frames_done / max(seconds, 1e-9), spent, out,
                      (info.width, info.height))


__all__ = ["MapSummary", "map_video"]
