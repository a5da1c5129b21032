"""taskzoo.video: decode -> detect -> ByteTrack -> draw -> encode, on synthetic clips made here
(a white square moving right) and on the first frames of a real clip that also has audio."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

# PyAV and supervision are what taskzoo.video runs on; say so rather than error at collection
av = pytest.importorskip("av", reason="taskzoo.video needs PyAV (pip install av)")
pytest.importorskip("supervision", reason="taskzoo.video needs supervision")

from taskzoo.errors import InputError, UnknownNameError
from taskzoo.video import ByteTrack, read_frames, track_video, video_info

N, W, H, SIDE = 20, 96, 64, 16


def square_x(i: int) -> int:
    return 4 + 3 * i  # left edge of the square in frame i


def synthetic_frames() -> list[np.ndarray]:
    frames = []
    for i in range(N):
        f = np.full((H, W, 3), 30, np.uint8)
        f[20:20 + SIDE, square_x(i):square_x(i) + SIDE] = 255
        frames.append(f)
    return frames


def find_square(frames: list[np.ndarray]) -> list[dict]:
    """A fake detector: the bounding box of the bright pixels, one 'square' per frame."""
    out = []
    for f in frames:
        ys, xs = np.nonzero(f.mean(axis=2) > 128)
        n = int(len(xs) > 0)
        box = [[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]] if n else []
        out.append({"boxes": np.asarray(box, np.float32).reshape(-1, 4), "scores": np.full(n, 0.9, np.float32),
                    "labels": np.zeros(n, np.int64), "names": ["square"] * n})
    return out


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    path = tmp_path / "square.mp4"
    with av.open(str(path), "w") as c:
        s = c.add_stream("mpeg4", rate=10)  # not libx264: the input need not be H.264
        s.width, s.height, s.pix_fmt, s.bit_rate = W, H, "yuv420p", 2_000_000
        for f in synthetic_frames():
            c.mux(s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
        c.mux(s.encode())
    return path


def decode(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(c.streams.video[0])]


def check_rows(jsonl: Path, fps: float) -> None:
    rows = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert [r["frame"] for r in rows] == list(range(N))
    assert rows[3]["time"] == pytest.approx(3 / fps)
    assert {tuple(r["track_ids"]) for r in rows} == {(1,)}  # one square, one id throughout
    assert {tuple(r["labels"]) for r in rows} == {("square",)}
    for i, r in enumerate(rows):
        x1, y1, x2, y2 = r["boxes"][0]
        assert abs(x1 - square_x(i)) <= 2 and abs(y1 - 20) <= 2
        assert abs(x2 - square_x(i) - SIDE) <= 2 and abs(y2 - 20 - SIDE) <= 2


def test_video_file_in_mp4_out(clip: Path, tmp_path: Path):
    info = video_info(clip)
    assert (info.width, info.height, info.fps, info.frames) == (W, H, 10.0, N)
    summary = track_video(find_square, clip, tmp_path / "out" / "annotated.mp4", batch=8)
    assert (summary.frames, summary.tracks, summary.per_class) == (N, 1, {"square": N})
    assert summary.jsonl_path == tmp_path / "out" / "annotated.jsonl"
    assert "20 frames" in summary.format() and "1 tracks" in summary.format()
    out = decode(summary.out_path)
    assert len(out) == N and out[0].shape == (H, W, 3)
    # the drawn box: pixels left of the square (on its box's edge) are no longer background
    original = synthetic_frames()[10]
    assert np.abs(out[10].astype(int) - original).max() > 60
    check_rows(summary.jsonl_path, fps=10)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["annotated.jsonl", "annotated.mp4"]


def test_png_folder_in_png_folder_out(tmp_path: Path):
    src = tmp_path / "frames"
    src.mkdir()
    for i, f in enumerate(synthetic_frames()):  # unpadded names: frame2 must come before frame10
        Image.fromarray(f).save(src / f"frame{i}.png")
    (src / "notes.txt").write_text("not a frame")
    assert [len(b) for _, b in read_frames(src, batch=8)] == [8, 8, 4]
    summary = track_video(find_square, src, tmp_path / "annotated", fps=5, batch=3)
    assert summary.frames == N and summary.tracks == 1
    pngs = sorted((tmp_path / "annotated").iterdir())
    assert len(pngs) == N and np.asarray(Image.open(pngs[0])).shape == (H, W, 3)
    check_rows(tmp_path / "annotated.jsonl", fps=5)
    (tmp_path / "annotated" / "mine.txt").write_text("keep")  # a rerun replaces only its frames
    track_video(find_square, src, tmp_path / "annotated", max_frames=5)
    assert len(list((tmp_path / "annotated").glob("frame_*.png"))) == 5
    assert (tmp_path / "annotated" / "mine.txt").read_text() == "keep"


def test_real_clip_with_audio_stream(shared_data: Path, tmp_path: Path):
    src = shared_data / "videos" / "car-detection.mp4"
    if not src.is_file():
        pytest.skip(f"needs the real clip {src}")
    with av.open(str(src)) as c:
        assert c.streams.audio  # the point of this test: the audio stream must be skipped

    def one_box(frames):
        return [{"boxes": np.array([[100, 100, 300, 250]], np.float32), "scores": np.array([0.8], np.float32),
                 "labels": np.array([2]), "names": ["car"]} for _ in frames]

    summary = track_video(one_box, src, tmp_path / "cars.mp4", max_frames=15, batch=4)
    assert summary.frames == 15 and summary.per_class == {"car": 15}
    out = decode(summary.out_path)
    assert len(out) == 15 and out[0].shape == (432, 768, 3)
    with av.open(str(summary.out_path)) as c:
        assert c.streams.video[0].average_rate == 12.5
    rows = [json.loads(line) for line in summary.jsonl_path.read_text().splitlines()]
    assert rows[14]["time"] == pytest.approx(14 / 12.5)


def test_bad_inputs_name_the_path(tmp_path: Path):
    text = tmp_path / "x.mp4"
    text.write_text("this is not a video\n")
    empty = tmp_path / "empty"
    empty.mkdir()
    for bad in (tmp_path / "missing.mp4", text, empty):
        with pytest.raises(InputError, match=re.escape(str(bad))):
            track_video(find_square, bad, tmp_path / "out.mp4")
        with pytest.raises(InputError, match=re.escape(str(bad))):
            next(read_frames(bad, batch=2))
    with pytest.raises(UnknownNameError, match="bytetrack"):
        track_video(find_square, empty, tmp_path / "out.mp4", tracker="bytetrak")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "x.mp4"]


@pytest.mark.parametrize("out_name", ["out.mp4", "out_frames"])
def test_failing_detector_leaves_no_partial_output(clip: Path, tmp_path: Path, out_name: str):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    (out_dir / "out.jsonl").write_text("previous run\n")
    calls = []

    def flaky(frames):
        calls.append(len(frames))
        if len(calls) == 2:
            raise RuntimeError("detector crashed")
        return find_square(frames)

    with pytest.raises(RuntimeError, match="detector crashed"):
        track_video(flaky, clip, out_dir / out_name, batch=4, overwrite=True)  # jsonl: a user's
    assert sorted(p.name for p in out_dir.iterdir()) == ["out.jsonl"]  # no temp files either
    assert (out_dir / "out.jsonl").read_text() == "previous run\n"  # the old result is intact


def test_bytetrack_keeps_ids_through_weak_and_missing_boxes_and_keeps_classes_apart():
    bt = ByteTrack(fps=10)
    ids = []
    for i in range(12):
        a = [10 + 6 * i, 10, 30 + 6 * i, 40]
        b = [80 - 6 * i, 12, 100 - 6 * i, 42]  # a second object of another class crossing the first
        score_a = 0.15 if 4 <= i < 6 else 0.9  # weak (occluded): ByteTrack's second association
        boxes, scores, labels = [a, b], [score_a, 0.9], [0, 1]
        if 8 <= i < 10:  # object b missing for two frames: its track must wait, lost
            boxes, scores, labels = [a], [score_a], [0]
        pairs = bt.update(np.array(boxes, np.float32), np.array(scores, np.float32), np.array(labels))
        ids.append(dict(pairs))
    assert all(p[0] == 1 for p in ids)  # detection 0 (class 0) is track 1 in every frame
    assert all(p[1] == 2 for i, p in enumerate(ids) if not 8 <= i < 10)
    assert all(len(p) == 1 for p in ids[8:10])
    # a box of another class where track 1 is: a new object (tentative for one frame), not track 1
    a = np.array([[10 + 6 * 12, 10, 30 + 6 * 12, 40]], np.float32)
    assert bt.update(a, np.array([0.9], np.float32), np.array([5])) == []
    assert bt.update(a, np.array([0.9], np.float32), np.array([5])) == [(0, 3)]
