"""Writing what `taskzoo.video.track_video` produces: the annotated video (each suffix with the
first encoder this PyAV/FFmpeg build has) or a folder of PNG frames, and the checks that keep
it off a file taskzoo did not write."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import numpy as np

from taskzoo.errors import InputError, UsageError

# what a video file is, for reading and for writing (the detection predictor imports this);
# each is written with the first encoder of ENCODERS that this PyAV/FFmpeg build has
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")
ENCODERS: dict[str, tuple[str, ...]] = {
    ".mp4": ("libx264", "mpeg4"), ".m4v": ("libx264", "mpeg4"), ".mov": ("libx264", "mpeg4"),
    ".mkv": ("libx264", "mpeg4"), ".avi": ("mpeg4",),  # AVI players expect MPEG-4 part 2
    ".webm": ("libvpx-vp9", "libvpx"),  # WebM holds only VP8, VP9 or AV1
}
WRITTEN_BY = "taskzoo.video"  # the container's comment tag: a file taskzoo may replace


def _encoder(suffix: str) -> str | None:
    """The first encoder of ENCODERS[suffix] this FFmpeg build has, or None."""
    import av
    for name in ENCODERS.get(suffix.lower(), ()):
        try:
            av.codec.Codec(name, "w")
            return name
        except (av.FFmpegError, ValueError):  # UnknownCodecError: e.g. no GPL x264, no libvpx
            continue
    return None


def writable_video_suffixes() -> list[str]:
    """The video suffixes this PyAV/FFmpeg build can write (VIDEO_SUFFIXES it has an
    encoder for)."""
    return [s for s in VIDEO_SUFFIXES if _encoder(s)]


def _ours_video(path: Path) -> bool:
    """Whether `path` is a video taskzoo wrote (its container's comment tag)."""
    import av
    if not path.is_file():  # a FIFO would block the open; a folder is no video
        return False
    try:
        with av.open(str(path)) as c:
            return any(k.lower() == "comment" and v == WRITTEN_BY for k, v in c.metadata.items())
    except Exception:  # not a video at all: certainly not ours
        return False


def _ours_jsonl(path: Path) -> bool:
    """Whether `path` is a per-frame record taskzoo wrote (its first line is a frame row)."""
    if not path.is_file():  # a FIFO would block the open
        return False
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            row = json.loads(fh.readline(1 << 20))
    except (OSError, ValueError):
        return False
    return isinstance(row, dict) and {"frame", "track_ids"} <= row.keys()


def check_output(out: Path, *, overwrite: bool = False,
                 record: bool = True) -> tuple[bool, Path]:
    """(whether `out` is a video file rather than a folder of PNG frames, the jsonl beside it),
    after refusing, before anything is read or written, an output that cannot be written or
    would replace a file taskzoo did not write (unless `overwrite`). Makes `out`'s folder.
    `record=False`: no jsonl will be written (a transformed video), so none is checked."""
    as_video = out.suffix.lower() in VIDEO_SUFFIXES
    jsonl = out.parent / f"{out.stem if as_video else out.name}.jsonl"
    again = "choose another --save, or pass --overwrite to replace it"
    if as_video and not _encoder(out.suffix):
        raise UsageError(f"--save {out}: this PyAV/FFmpeg build has no encoder for "
                         f"{out.suffix} videos; valid: {', '.join(writable_video_suffixes())}")
    if as_video and out.is_dir():
        raise UsageError(f"--save {out}: is a folder; the annotated video is a file: choose "
                         "another --save")
    if not as_video and (out.exists() or out.is_symlink()) and not out.is_dir():
        raise UsageError(f"--save {out}: exists and is not a folder (the annotated frames go "
                         f"into a folder of that name; a video takes {', '.join(VIDEO_SUFFIXES)})")
    if as_video and (out.exists() or out.is_symlink()) and not overwrite and not _ours_video(out):
        raise UsageError(f"--save {out}: already exists and is not a video taskzoo wrote: {again}")
    if record and (jsonl.is_dir() or ((jsonl.exists() or jsonl.is_symlink()) and not overwrite
                                      and not _ours_jsonl(jsonl))):
        raise UsageError(f"--save {out}: {jsonl} (the per-frame record written beside it) "
                         f"already exists and is not one taskzoo wrote: {again}")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise UsageError(f"--save {out}: a part of this path is a file, not a folder") from None
    except OSError as e:
        raise UsageError(f"--save {out}: cannot make its folder ({e.strerror})") from None
    return as_video, jsonl


class Writer:
    """Annotated frames -> a video file (its suffix's first encoder in ENCODERS) or a folder
    of PNG frames."""

    def __init__(self, path: Path, as_video: bool, fps: float, width: int, height: int):
        import av
        self.path, self.n, self.container = path, 0, None
        if not as_video:
            path.mkdir()
            return
        codec = _encoder(path.suffix) or "mpeg4"  # check_output refused a suffix without one
        self.container = av.open(str(path), "w")
        self.container.metadata["comment"] = WRITTEN_BY  # a later run may replace this file
        self.stream = self.container.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
        self.stream.width, self.stream.height = width + width % 2, height + height % 2  # yuv420p
        self.stream.pix_fmt = "yuv420p"  # what every player decodes
        if codec == "libx264":
            self.stream.options = {"preset": "veryfast", "crf": "23"}  # encode must not bottleneck
        else:
            self.stream.bit_rate = 4_000_000  # the 200 kb/s default smears the drawn labels
        if codec.startswith("libvpx"):  # libvpx's default "good" deadline is many times slower
            self.stream.options = {"deadline": "realtime", "cpu-used": "8", "row-mt": "1"}

    def write(self, rgb: np.ndarray) -> None:
        import av
        from PIL import Image
        self.n += 1
        if self.container is None:
            Image.fromarray(rgb).save(self.path / f"frame_{self.n - 1:06d}.png", compress_level=1)
            return
        pad = ((0, self.stream.height - rgb.shape[0]), (0, self.stream.width - rgb.shape[1]), (0, 0))
        if pad[0][1] or pad[1][1]:  # pad odd sizes: the encoder would otherwise rescale
            rgb = np.pad(rgb, pad, mode="edge")
        self.container.mux(self.stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))

    def close(self, ok: bool = True) -> None:
        if self.container is not None:
            if ok:
                self.container.mux(self.stream.encode())  # flush delayed frames
            self.container.close()


def fit_frame(frame: np.ndarray, width: int, height: int) -> np.ndarray:
    """`frame` scaled to width x height (bilinear), as ffmpeg scales a stream that changes
    size: one output holds one frame size."""
    from PIL import Image
    return np.asarray(Image.fromarray(frame).resize((width, height), Image.Resampling.BILINEAR))


def discard(writer: Writer | None, tmp_out: Path, *others: Path) -> None:
    """Close the writer and remove the temporary outputs of a failed run (a frame folder or
    a video, and `others`)."""
    if writer is not None:
        try:
            writer.close(ok=False)
        except Exception:  # the original error matters, not the cleanup's
            pass
    if tmp_out.is_dir():
        shutil.rmtree(tmp_out, ignore_errors=True)
    else:
        tmp_out.unlink(missing_ok=True)
    for path in others:
        path.unlink(missing_ok=True)


def commit(tmp: Path, final: Path) -> None:
    if tmp.is_dir() and final.is_dir():  # an existing frame folder: move frame by frame
        new = {f.name for f in tmp.iterdir()}
        for name in sorted(new):
            os.replace(tmp / name, final / name)
        for old in final.glob("frame_[0-9]*.png"):  # a previous, longer run's frames: not ours now
            if old.name not in new:
                old.unlink()
        tmp.rmdir()
    else:
        os.replace(tmp, final)


def video_request(inputs: Sequence[str], save: str | None) -> bool:
    """Whether `taskzoo predict`'s inputs are videos (or one folder of frames saved to a
    video) to track rather than images; InputError for a mix, or a video without --save."""
    is_video = [Path(a).suffix.lower() in VIDEO_SUFFIXES for a in inputs]
    # os.path.isdir: False, not an OSError, for a name too long to be a path
    frames = (len(inputs) == 1 and os.path.isdir(inputs[0]) and save is not None
              and Path(save).suffix.lower() in VIDEO_SUFFIXES)
    if not any(is_video) and not frames:
        return False
    if not all(is_video) and not frames:
        raise InputError("give either videos or images, not both in one call")
    if save is None:
        raise InputError("a video needs --save OUT.mp4 (the annotated video; OUT.jsonl, "
                         "one row per frame, is written beside it)")
    return True


def video_targets(inputs: Sequence[str], save: str) -> list[Path]:
    """Where each input video's annotated copy goes: `save` itself for one input, else (or
    when `save` is a folder) `save/<name>.mp4`, `<name>-2.mp4` for a second input of the same
    name. UsageError, before anything is written, when an output would replace an input or
    `save` names a file that is no video (`out.gif` would be a folder of PNGs by that name)."""
    out = Path(save).expanduser()
    in_folder = out.is_dir() or not out.suffix
    if not in_folder and out.suffix.lower() not in VIDEO_SUFFIXES:
        raise UsageError(f"--save {save}: {out.suffix} is not a video suffix; give OUT with one "
                         f"of {', '.join(VIDEO_SUFFIXES)}, or a folder (one that exists, or a name "
                         "without a suffix)")
    if len(inputs) > 1 and not in_folder:
        raise UsageError(f"--save {save}: one video file for {len(inputs)} inputs; give a "
                         "folder (each annotated video is written there under its input's name)")
    sources = {Path(src).expanduser().resolve(): src for src in inputs}
    targets: list[Path] = []
    for src in inputs:
        target, k = out, 1
        while in_folder and (k == 1 or target in targets):
            target = out / (f"{Path(src).stem}.mp4" if k == 1 else f"{Path(src).stem}-{k}.mp4")
            k += 1
        if target.resolve() in sources:
            raise UsageError(f"--save {save}: the annotated video would be written to "
                             f"{target}, which is the input {sources[target.resolve()]}; give "
                             "another file or folder (an input is never replaced)")
        targets.append(target)
    return targets
