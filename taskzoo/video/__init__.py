"""Video detection with tracking: decode -> detect in batches -> track -> draw -> encode.

    >>> from taskzoo.video import track_video
    >>> summary = track_video(detect, "car-detection.mp4", "out.mp4")   # doctest: +SKIP
    >>> print(summary.format())                                         # doctest: +SKIP
    377 frames in 14.2 s (26.5 fps end to end, detect 9.8 s), 6 tracks -> out.mp4

`detect(frames) -> list[dict]` is any detector: RGB uint8 frames [H, W, 3] in; per frame
"boxes" (float32 [N, 4] xyxy pixels), "scores" [N], "labels" (int64 [N]), "names" out.
Tracking is ByteTrack (Zhang et al., ECCV 2022), the tracker Ultralytics and Roboflow ship,
pure NumPy/SciPy: a Kalman filter per track and two IoU associations, the second with
low-score boxes, which keeps a track through occlusion instead of starting a new id.
supervision shipped it as `sv.ByteTrack` until 0.31 moved it to Roboflow's `trackers`, which
needs OpenCV; so a compact port of the reference lives here (`bytetrack.py`). supervision
still draws (its
NumPy fallback needs no OpenCV); PyAV decodes (video stream only: clips with audio) and
encodes (`output.py`: the encoders, the writer and the checks on the output path). Outputs
are written under temporary names and renamed when complete, and never
over a file taskzoo did not write (unless `overwrite=True`): a video taskzoo writes carries
a comment tag in its container, its jsonl starts with a frame record.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from taskzoo.errors import InputError, UnknownNameError, did_you_mean
from taskzoo.errors import UsageError as UsageError
from taskzoo.video.bytetrack import ByteTrack
from taskzoo.video.output import (
    ENCODERS as ENCODERS,
)
from taskzoo.video.output import (
    VIDEO_SUFFIXES as VIDEO_SUFFIXES,
)
from taskzoo.video.output import (
    WRITTEN_BY as WRITTEN_BY,
)
from taskzoo.video.output import (
    Writer,
    check_output,
    commit,
    discard,
    fit_frame,
)
from taskzoo.video.output import (
    writable_video_suffixes as writable_video_suffixes,
)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
TRACKERS = ("bytetrack",)
Detector = Callable[[list[np.ndarray]], list[dict[str, Any]]]


@dataclass(frozen=True)
class VideoInfo:
    """What `video_info` reads from a video file or a folder of frames."""
    path: Path
    fps: float
    width: int
    height: int
    frames: int | None  # None when the container does not say


@dataclass
class VideoSummary:
    """What `track_video` did; `format()` gives one line for a log."""
    frames: int
    seconds: float  # wall time of decode + detect + track + draw + encode
    fps_end_to_end: float
    detect_seconds: float
    tracks: int  # distinct track ids
    out_path: Path
    jsonl_path: Path
    per_class: dict[str, int] = field(default_factory=dict)  # class -> frames it appears in
    resized: int = 0  # frames scaled to the first frame's size (the input changed size)
    size: tuple[int, int] = (0, 0)  # (width, height) of the output frames

    def format(self) -> str:
        scaled = (f" ({self.resized} frames scaled to {self.size[0]}x{self.size[1]}: the input "
                  "changed size)" if self.resized else "")
        return (f"{self.frames} frames in {self.seconds:.1f} s ({self.fps_end_to_end:.1f} fps end "
                f"to end, detect {self.detect_seconds:.1f} s), {self.tracks} tracks{scaled} "
                f"-> {self.out_path}")

    def to_json(self) -> dict[str, Any]:
        """The summary as JSON-able data (`taskzoo predict --json`)."""
        return {"frames": self.frames, "seconds": round(self.seconds, 3),
                "fps_end_to_end": round(self.fps_end_to_end, 2),
                "detect_seconds": round(self.detect_seconds, 3), "tracks": self.tracks,
                "saved": str(self.out_path), "jsonl": str(self.jsonl_path),
                "per_class": dict(self.per_class), "resized": self.resized}


# ---------------------------------------------------------------- reading
def _natural(p: Path) -> list:
    # "frame2" < "frame10": digit runs compare as numbers (re.split keeps str/int positions aligned)
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", p.name)]


def _check(source: str | os.PathLike) -> Path:
    if not (path := Path(source).expanduser()).exists():
        raise InputError(f"{path}: no such video file or frame folder")
    return path


def _images(folder: Path) -> list[Path]:
    images = sorted((p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES), key=_natural)
    if not images:
        raise InputError(f"{folder}: folder holds no frame images ({', '.join(IMAGE_SUFFIXES)})")
    return images


def _open(path: Path) -> tuple[Any, Any]:
    import av
    try:
        container = av.open(str(path))
    except (av.FFmpegError, UnicodeDecodeError) as e:  # `from None`: no PyAV traceback for users
        raise InputError(f"{path}: not a decodable video ({getattr(e, 'strerror', None) or e})") from None
    if not container.streams.video:
        container.close()
        raise InputError(f"{path}: has no video stream")
    return container, container.streams.video[0]


def video_info(source: str | os.PathLike, *, fps: float | None = None) -> VideoInfo:
    """Frame rate, size and frame count of a video file or a folder of frames (`fps` overrides
    the file's rate; a folder has none, so it defaults to 25).

    >>> video_info("car-detection.mp4")   # doctest: +SKIP
    VideoInfo(path=PosixPath('car-detection.mp4'), fps=12.5, width=768, height=432, frames=377)
    """
    path = _check(source)
    if path.is_dir():
        images = _images(path)
        w, h = _load_image(images[0]).shape[1::-1]
        return VideoInfo(path, float(fps or 25.0), w, h, len(images))
    container, stream = _open(path)
    with container:
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        return VideoInfo(path, float(fps or rate or 25.0), stream.codec_context.width,
                         stream.codec_context.height, stream.frames or None)


def _load_image(p: Path) -> np.ndarray:
    # read_image, as for a single image: EXIF orientation applied (phone frames upright),
    # FIFOs refused, Pillow's bomb warning silenced and its pixel limit a one-line error
    from taskzoo.data.image_files import read_image
    from taskzoo.errors import DataError
    try:
        im = read_image(p)
    except DataError as e:
        raise InputError(str(e)) from None
    return np.asarray(im.convert("RGB"))


def _image_frames(folder: Path) -> Iterator[np.ndarray]:
    # frames may differ in size: track_video scales them to the first frame's size
    for p in _images(folder):
        yield _load_image(p)


def _video_frames(path: Path) -> Iterator[np.ndarray]:
    import av
    container, stream = _open(path)
    stream.thread_type = "AUTO"  # frame + slice threads: decoding H.264 is otherwise serial
    with container:
        try:
            for frame in container.decode(stream):  # this stream only: audio packets are skipped
                yield frame.to_ndarray(format="rgb24")
        except av.FFmpegError as e:
            raise InputError(f"{path}: decoding failed ({e.strerror or e})") from None


def read_frames(source: str | os.PathLike, *, batch: int,
                max_frames: int | None = None) -> Iterator[tuple[int, list[np.ndarray]]]:
    """Yields (index of the first frame, up to `batch` RGB uint8 frames [H, W, 3]) from a video
    file or a folder of images (natural order: frame2 before frame10; EXIF orientation
    applied). Frames come at the size they have: a stream may change size midway.

    >>> for start, frames in read_frames("car-detection.mp4", batch=8):   # doctest: +SKIP
    ...     print(start, len(frames), frames[0].shape)                     # 0 8 (432, 768, 3)
    """
    if batch < 1:
        raise InputError(f"batch must be >= 1, got {batch}")
    path = _check(source)
    frames = _image_frames(path) if path.is_dir() else _video_frames(path)
    buf: list[np.ndarray] = []
    start = 0
    try:
        for i, frame in enumerate(frames):
            if max_frames is not None and i >= max_frames:
                break
            buf.append(frame)
            if len(buf) == batch:
                yield start, buf
                start, buf = start + batch, []
        if buf:
            yield start, buf
    finally:
        frames.close()  # closes the container now, not at garbage collection


def _parse(res: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    boxes = np.asarray(res["boxes"], np.float32).reshape(-1, 4)
    scores = np.asarray(res["scores"], np.float32).reshape(-1)
    labels = np.asarray(res["labels"], np.int64).reshape(-1)
    names = [str(n) for n in res.get("names", [str(v) for v in labels])]
    if not len(boxes) == len(scores) == len(labels) == len(names):
        raise InputError(f"detect returned {len(boxes)} boxes, {len(scores)} scores, "
                         f"{len(labels)} labels and {len(names)} names for one frame")
    return boxes, scores, labels, names


def track_video(detect: Detector, source: str | os.PathLike, out_path: str | os.PathLike, *,
                batch: int = 8, tracker: str = "bytetrack", fps: float | None = None,
                max_frames: int | None = None, conf: float = 0.25,
                progress: bool | None = None, overwrite: bool = False,
                names_by_track: bool = False, abstain: str = "") -> VideoSummary:
    """Detects and tracks objects through a video file or frame folder; writes the annotated
    video (a VIDEO_SUFFIXES name: `.mp4 .avi .mov .mkv .webm .m4v`; any other `out_path` is a
    folder of PNG frames) and `<stem>.jsonl` beside it: {"frame", "time", "boxes", "labels",
    "scores", "track_ids"} per frame.

    `conf` is the score from which a box starts or extends a track; weaker boxes (>= 0.1) only
    extend a track seen in the previous frame (ByteTrack). `fps` overrides the input's rate.
    `names_by_track`: a box is named what its track's boxes were named most often so far
    (a face recognised in a few frames keeps its name through the rest); `abstain`
    ("unknown") counts only while a track has no other name.

    A frame of another size than the first (a stream that changes resolution, a folder of
    mixed sizes) is scaled to the first frame's size, as ffmpeg does: boxes and the output are
    in that size, and the summary says how many frames were scaled. Frames from a folder are
    read as single images are (EXIF orientation applied, Pillow's pixel limit enforced).

    Before anything is read, the output is checked (UsageError): a suffix this FFmpeg build
    cannot encode, a path through a file, or an existing video or jsonl that taskzoo did not
    write (replaced only with `overwrite=True`; taskzoo's own earlier output is replaced).

    >>> summary = track_video(detector, "car-detection.mp4", "out.mp4")   # doctest: +SKIP
    >>> summary.tracks, summary.per_class                                  # doctest: +SKIP
    (6, {'car': 301})
    """
    if tracker not in TRACKERS:
        raise UnknownNameError(f"unknown tracker {tracker!r}; valid: {', '.join(TRACKERS)}."
                               + did_you_mean(tracker, TRACKERS))
    t_start = time.perf_counter()
    out = Path(out_path).expanduser()
    info = video_info(source, fps=fps)
    as_video, jsonl = check_output(out, overwrite=overwrite)
    # same folder as the final names, so os.replace is an atomic rename; suffix kept for PyAV
    tmp_out = out.parent / f".{out.stem}.{os.getpid()}.tmp{out.suffix if as_video else ''}"
    tmp_jsonl = out.parent / f".{jsonl.name}.{os.getpid()}.tmp"
    drawer = _Drawer(info.height)
    from tqdm import tqdm
    bytetrack = ByteTrack(info.fps, high=conf)
    total = min(x for x in (info.frames, max_frames) if x is not None) if (info.frames or max_frames) else None
    tally = _Tally(votes=TrackNames(abstain) if names_by_track else None)
    writer: Writer | None = None
    try:
        writer = Writer(tmp_out, as_video, info.fps, info.width, info.height)
        with open(tmp_jsonl, "w", encoding="utf-8") as fh, \
                tqdm(total=total, unit="frame", desc="video",
                     disable=not (sys.stderr.isatty() if progress is None else progress)) as bar:
            for start, frames in read_frames(source, batch=batch, max_frames=max_frames):
                frames = [_sized(f, info, tally) for f in frames]
                t0 = time.perf_counter()
                results = list(detect(frames))
                tally.detect_s += time.perf_counter() - t0
                if len(results) != len(frames):
                    raise InputError(f"detect returned {len(results)} results for {len(frames)} frames")
                for i, (frame, res) in enumerate(zip(frames, results), start):
                    _track_frame(i, frame, res, info.fps, bytetrack, drawer, writer, fh, tally)
                bar.update(len(frames))
        if tally.frames == 0:
            raise InputError(f"{info.path}: no frame could be decoded")
        writer.close()
        commit(tmp_out, out)
        os.replace(tmp_jsonl, jsonl)
    except BaseException:
        discard(writer, tmp_out, tmp_jsonl)
        raise
    seconds = time.perf_counter() - t_start
    return VideoSummary(tally.frames, seconds, tally.frames / max(seconds, 1e-9), tally.detect_s,
                        len(tally.ids), out, jsonl, dict(sorted(tally.per_class.items())),
                        tally.resized, (info.width, info.height))


def _sized(frame: np.ndarray, info: VideoInfo, tally: _Tally) -> np.ndarray:
    """`frame`, scaled to the first frame's size when it has another (counted in `tally`)."""
    if frame.shape[:2] == (info.height, info.width):
        return frame
    tally.resized += 1
    return fit_frame(frame, info.width, info.height)


@dataclass
class _Tally:
    """What `VideoSummary` reports, counted frame by frame."""

    frames: int = 0
    detect_s: float = 0.0
    resized: int = 0  # frames scaled to the first frame's size
    ids: set[int] = field(default_factory=set)
    per_class: Counter[str] = field(default_factory=Counter)
    votes: TrackNames | None = None  # names carried by tracks, when asked for


class TrackNames:
    """Each track's name by majority over its boxes so far: a box named `abstain` counts
    only while its track has no other name (one frame's "unknown" does not undo ten of
    "alice").

    >>> names = TrackNames("unknown")
    >>> names.update([1, 2], ["alice", "unknown"]), names.update([1, 2], ["unknown", "bob"])
    (['alice', 'unknown'], ['alice', 'bob'])
    """

    def __init__(self, abstain: str = "") -> None:
        self.abstain = abstain
        self.counts: dict[int, Counter[str]] = {}

    def update(self, track_ids: list[int], names: list[str]) -> list[str]:
        """The tracks' names after counting this frame's `names` (one per track id)."""
        out = []
        for tid, name in zip(track_ids, names):
            seen = self.counts.setdefault(tid, Counter())
            seen[name] += 1
            named = [(n, c) for n, c in seen.most_common() if n != self.abstain]
            out.append(named[0][0] if named else name)
        return out


class _Drawer:
    """supervision's boxes and "class #track score" labels, sized for the video's height."""

    def __init__(self, height: int) -> None:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*OpenCV.*")  # its NumPy fallback draws fine
            import supervision as sv
        self.sv = sv
        scale = max(0.4, height / 864)  # 0.5 at 432 px high: readable, not covering the object
        self.boxer = sv.BoxAnnotator(color_lookup=sv.ColorLookup.TRACK,
                                     thickness=max(2, round(4 * scale)))
        # black text on the palette's light colours, white on its dark ones: readable on every track
        ink = sv.ColorPalette([
            sv.Color.BLACK if 0.3 * c.r + 0.6 * c.g + 0.1 * c.b > 140 else sv.Color.WHITE
            for c in sv.ColorPalette.DEFAULT.colors])
        self.labeller = sv.LabelAnnotator(color_lookup=sv.ColorLookup.TRACK, text_color=ink,
                                          text_scale=scale, text_thickness=max(1, round(2 * scale)),
                                          smart_position=True)

    def draw(self, frame: np.ndarray, boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray,
             tids: list[int], names: list[str]) -> np.ndarray:
        """A copy of `frame` with the tracked boxes drawn."""
        dets = self.sv.Detections(xyxy=boxes, confidence=scores, class_id=labels,
                                  tracker_id=np.array(tids, np.int64))
        text = [f"{c} #{t} {s:.2f}" for c, t, s in zip(names, tids, scores)]
        return self.labeller.annotate(self.boxer.annotate(frame.copy(), dets), dets, labels=text)


def _track_frame(i: int, frame: np.ndarray, res: dict[str, Any], fps: float, bytetrack: ByteTrack,
                 drawer: _Drawer, writer: Writer, fh: Any, tally: _Tally) -> None:
    """Track frame `i`'s detections; write the drawn frame and its jsonl record."""
    boxes, scores, labels, names = _parse(res)
    pairs = bytetrack.update(boxes, scores, labels)
    keep = np.array([d for d, _ in pairs], np.int64)
    tids = [t for _, t in pairs]
    kept_names = [names[d] for d in keep]
    if tally.votes is not None:
        kept_names = tally.votes.update(tids, kept_names)
    writer.write(drawer.draw(frame, boxes[keep], scores[keep], labels[keep], tids, kept_names))
    fh.write(json.dumps({
        "frame": i, "time": round(i / fps, 4),
        "boxes": [[round(float(v), 1) for v in b] for b in boxes[keep]],
        "labels": kept_names, "scores": [round(float(s), 4) for s in scores[keep]],
        "track_ids": tids}) + "\n")
    tally.ids.update(tids)
    tally.per_class.update(set(kept_names))
    tally.frames += 1


__all__ = ["ENCODERS", "IMAGE_SUFFIXES", "TRACKERS", "VIDEO_SUFFIXES", "WRITTEN_BY", "ByteTrack",
           "TrackNames", "VideoInfo", "VideoSummary", "check_output", "read_frames", "track_video",
           "video_info", "writable_video_suffixes"]
