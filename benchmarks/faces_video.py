"""Faces in videos: speed against real time, and how many track ids the faces get.

    TASKZOO_MIRROR=../shared/data python benchmarks/faces_video.py [--out faces_video]

1. The shared clip `videos/one-by-one-person-detection.mp4` (1,394 frames at 10 fps, six
   people who walk in one at a time and stand with their backs to the camera), with the
   default detector and with `verify=0.7`: frames/s end to end against the clip's 10 fps,
   frames with a face, track ids.
2. A camera panning over a real photo with five faces (coco128 000000000308, scaled 1.5x,
   a 640x480 window moving 6 px a frame for 100 frames at 10 fps): faces enter and leave
   the frame, and each should keep one track id.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np

import taskzoo

CLIP = Path("videos") / "one-by-one-person-detection.mp4"
PHOTO = Path("coco128") / "images" / "train2017" / "000000000308.jpg"


def pan_video(photo: Path, out: Path, *, frames: int = 100, step: int = 6) -> Path:
    """A 640x480 window moving right over `photo` scaled 1.5x, as an MP4 at 10 fps."""
    import av
    from PIL import Image

    image = Image.open(photo).convert("RGB")
    image = image.resize((image.width * 3 // 2, image.height * 3 // 2))
    top = max(0, (image.height - 480) // 2)
    with av.open(str(out), "w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 640, 480, "yuv420p"
        for i in range(frames):
            x = min(step * i, image.width - 640)
            window = np.asarray(image.crop((x, top, x + 640, top + 480)))
            for packet in stream.encode(av.VideoFrame.from_ndarray(window, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return out


def report(name: str, summary, jsonl: Path, fps: float) -> None:
    rows = [json.loads(line) for line in jsonl.read_text(encoding="utf-8").splitlines()]
    spans: dict[int, list[int]] = {}
    for r in rows:
        for t in r["track_ids"]:
            spans.setdefault(t, []).append(r["frame"])
    print(f"{name}: {summary.frames} frames in {summary.seconds:.1f} s = {summary.fps_end_to_end:.1f} "
          f"frames/s ({summary.fps_end_to_end / fps:.1f}x real time at {fps:g} fps); frames with a face "
          f"{sum(bool(r['track_ids']) for r in rows)}; track ids {len(spans)}: "
          + ", ".join(f"#{t} frames {min(f)}-{max(f)} ({len(f)})" for t, f in spans.items()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("faces_video"))
    args = ap.parse_args()
    mirror = Path(os.environ.get("TASKZOO_MIRROR", "../shared/data").split(",")[0])
    args.out.mkdir(parents=True, exist_ok=True)
    faces = taskzoo.load("faces", device="cpu")
    for verify in (0.0, 0.7):
        target = args.out / f"room_verify{verify:g}.mp4"
        [summary] = faces.stream_cli([str(mirror / CLIP)], str(target), verify=verify,
                                     overwrite=True)
        report(f"room clip, verify={verify:g}", summary, target.with_suffix(".jsonl"), 10.0)
    clip = pan_video(mirror / PHOTO, args.out / "pan_input.mp4")
    target = args.out / "pan.mp4"
    [summary] = faces.stream_cli([str(clip)], str(target), overwrite=True)
    print(f"the photo itself: {len(faces(str(mirror / PHOTO))['boxes'])} faces")
    report("pan over a 5-face photo", summary, target.with_suffix(".jsonl"), 10.0)


if __name__ == "__main__":
    main()
