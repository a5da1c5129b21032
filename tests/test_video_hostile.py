"""Issue 28, the video cases (9, 10, part of 17): hostile or careless inputs and outputs of
`taskzoo.video.track_video` and `taskzoo predict detection ... --save OUT.<video>`."""

from __future__ import annotations

import json
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

av = pytest.importorskip("av", reason="taskzoo.video needs PyAV (pip install av)")
pytest.importorskip("supervision", reason="taskzoo.video needs supervision")

from test_video import decode, find_square  # noqa: E402  (a decoder; a fake detector)

from taskzoo.errors import InputError, UsageError  # noqa: E402
from taskzoo.video import VIDEO_SUFFIXES, read_frames, track_video, video_info  # noqa: E402

W, H, N = 96, 64, 6


def square_frames(n: int = N, w: int = W, h: int = H) -> list[np.ndarray]:
    frames = []
    for i in range(n):
        f = np.full((h, w, 3), 30, np.uint8)
        f[10:26, 4 + 3 * i:20 + 3 * i] = 255
        frames.append(f)
    return frames


def never_called(frames: list[np.ndarray]) -> list[dict]:
    raise AssertionError("a refused output must be refused before any frame is detected")


def make_clip(path: Path, frames: list[np.ndarray], fmt: str | None = None,
              codec: str = "mpeg4") -> Path:
    with av.open(str(path), "w", format=fmt) as c:
        s = c.add_stream(codec, rate=10)
        s.width, s.height, s.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
        for f in frames:
            c.mux(s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
        c.mux(s.encode())
    return path


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    return make_clip(tmp_path / "clip.mp4", square_frames())


# ---------------------------------------------------------------- case 10a: one list of suffixes
def test_one_definition_of_a_video_suffix():
    from taskzoo.tasks.detection import predictor

    assert predictor.VIDEO_SUFFIXES is VIDEO_SUFFIXES
    assert set(VIDEO_SUFFIXES) >= {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v"}


@pytest.mark.parametrize("suffix", [".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v"])
def test_every_video_suffix_writes_a_video_pyav_reads_back(clip: Path, tmp_path: Path, suffix: str):
    """Issue 28, case 10: `--save out.avi` / `.webm` / `.m4v` wrote a folder of PNGs."""
    out = tmp_path / f"out{suffix}"
    summary = track_video(find_square, clip, out, batch=4)
    assert out.is_file() and summary.out_path == out
    frames = decode(out)
    assert len(frames) == N and frames[0].shape == (H, W, 3)
    # and it reads back as an input, like any listed suffix
    assert video_info(out).width == W and len(list(read_frames(out, batch=N))[0][1]) == N


def test_a_suffix_without_an_encoder_is_refused_before_any_frame(clip: Path, tmp_path: Path,
                                                                 monkeypatch):
    import taskzoo.video as video

    monkeypatch.setitem(video.ENCODERS, ".webm", ("no-such-encoder",))
    with pytest.raises(UsageError) as exc:
        track_video(never_called, clip, tmp_path / "out.webm")
    msg = str(exc.value)
    assert "out.webm" in msg and ".mp4" in msg and ".webm" not in msg.split("valid")[-1]
    assert "\n" not in msg
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]


def test_cli_save_avi_is_a_video(clip: Path, tmp_path: Path, capsys, monkeypatch):
    from taskzoo.cli import main

    monkeypatch.setenv("TASKZOO_OFFLINE", "1")  # the default weights ship with the package
    monkeypatch.chdir(tmp_path)
    assert main(["predict", "detection", "clip.mp4", "--save", "out.avi"]) == 0
    assert capsys.readouterr().out.rstrip().endswith("-> out.avi")
    assert (tmp_path / "out.avi").is_file() and len(decode(tmp_path / "out.avi")) == N
    # a suffix that is no video: refused, not a folder of PNGs with a video's name
    assert main(["predict", "detection", "clip.mp4", "--save", "out.gif"]) == 2
    err = capsys.readouterr().err
    assert "out.gif" in err and ".avi" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out.gif").exists()


# ---------------------------------------------------------------- case 10b: EXIF in a frame folder
def test_exif_rotated_frames_are_read_upright(tmp_path: Path):
    """Issue 28, case 10: a folder of EXIF-rotated JPEGs was read sideways."""
    src = tmp_path / "frames"
    src.mkdir()
    for i, f in enumerate(square_frames()):
        # stored sideways (rotated 90 degrees clockwise), EXIF orientation 8 turns it back
        exif = Image.Exif()
        exif[0x0112] = 8
        Image.fromarray(np.rot90(f, k=-1).copy()).save(src / f"f{i}.jpg", exif=exif, quality=95)
    info = video_info(src)
    assert (info.width, info.height) == (W, H)
    frames = [f for _, batch in read_frames(src, batch=4) for f in batch]
    assert frames[0].shape == (H, W, 3)
    # upright: the bright square is near the top-left, as in the original frame
    assert np.abs(frames[0].astype(int) - square_frames()[0]).mean() < 8
    summary = track_video(find_square, src, tmp_path / "out.mp4")
    assert decode(summary.out_path)[0].shape == (H, W, 3)


# ---------------------------------------------------------------- case 9: size change mid-stream
def test_a_frame_folder_whose_size_changes_is_scaled_to_the_first_size(tmp_path: Path):
    """Issue 28, case 9: a resolution change mid-stream ended the run."""
    src = tmp_path / "frames"
    src.mkdir()
    small = square_frames(3, 48, 32)
    for i, f in enumerate(square_frames(3) + small):
        Image.fromarray(f).save(src / f"frame{i}.png")
    summary = track_video(find_square, src, tmp_path / "out.mp4")
    assert summary.frames == 6 and summary.resized == 3
    assert "3 frames scaled to 96x64" in summary.format()
    assert summary.to_json()["resized"] == 3
    assert [f.shape for f in decode(summary.out_path)] == [(H, W, 3)] * 6


def test_a_video_whose_size_changes_is_scaled_to_the_first_size(tmp_path: Path):
    # two MPEG-TS segments of different sizes, joined: a stream that changes size
    a = make_clip(tmp_path / "a.ts", square_frames(5), fmt="mpegts", codec="mpeg2video")
    b = make_clip(tmp_path / "b.ts", square_frames(5, 64, 48), fmt="mpegts", codec="mpeg2video")
    joined = tmp_path / "joined.ts"
    joined.write_bytes(a.read_bytes() + b.read_bytes())
    sizes = {f.shape for f in decode(joined)}
    assert sizes == {(H, W, 3), (48, 64, 3)}  # the input really changes size
    summary = track_video(find_square, joined, tmp_path / "out.mkv")
    assert summary.resized > 0
    assert {f.shape for f in decode(summary.out_path)} == {(H, W, 3)}


# ---------------------------------------------------------------- case 9: decompression bomb
def bomb_png(path: Path, side: int = 30000) -> Path:
    """A 100-byte PNG whose header claims side x side pixels (1 bit each)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
                     + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))
    return path


def test_a_decompression_bomb_frame_is_one_line_naming_it(tmp_path: Path):
    src = tmp_path / "frames"
    src.mkdir()
    Image.fromarray(square_frames(1)[0]).save(src / "frame0.png")
    bomb = bomb_png(src / "frame1.png")
    assert bomb.stat().st_size < 200
    with pytest.raises(InputError) as exc:
        track_video(find_square, src, tmp_path / "out.mp4")
    assert str(bomb) in str(exc.value) and "\n" not in str(exc.value)
    assert not (tmp_path / "out.mp4").exists() and not (tmp_path / "out.jsonl").exists()
    first = tmp_path / "first"
    first.mkdir()
    bomb_png(first / "a.png")
    with pytest.raises(InputError, match="a.png"):
        video_info(first)


# ---------------------------------------------------------------- case 17: the bomb warning
def test_a_big_but_allowed_frame_prints_no_bomb_warning(tmp_path: Path, monkeypatch):
    """Issue 28, case 17: Pillow's DecompressionBombWarning reached the terminal for a frame
    it then read fine. Pillow warns above MAX_IMAGE_PIXELS and refuses above twice that: a
    lowered limit makes these 96x64 frames 'big but allowed'."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", W * H - 100)
    src = tmp_path / "frames"
    src.mkdir()
    for i, f in enumerate(square_frames()):
        Image.fromarray(f).save(src / f"frame{i}.png")
    before = list(warnings.filters)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        summary = track_video(find_square, src, tmp_path / "out.mp4")
    assert summary.frames == N
    assert not [w for w in seen if issubclass(w.category, Image.DecompressionBombWarning)]
    assert list(warnings.filters) == before  # the process-wide filter is not changed


# ---------------------------------------------------------------- case 9: outputs
def test_save_over_a_file_taskzoo_did_not_write_is_refused(clip: Path, tmp_path: Path):
    """Issue 28, case 9: `--save X.avi` over an existing file replaced it."""
    mine = tmp_path / "holiday.avi"
    mine.write_bytes(b"my own video")
    with pytest.raises(UsageError) as exc:
        track_video(never_called, clip, mine)
    assert "holiday.avi" in str(exc.value) and "--overwrite" in str(exc.value)
    assert "\n" not in str(exc.value) and mine.read_bytes() == b"my own video"
    track_video(find_square, clip, mine, overwrite=True)
    assert len(decode(mine)) == N
    again = track_video(find_square, clip, mine)  # taskzoo's own output: replaced freely
    assert again.frames == N and len(decode(mine)) == N
    # the jsonl beside it is a user's file too
    log = tmp_path / "out.jsonl"
    log.write_text("my notes\n")
    with pytest.raises(UsageError, match="out.jsonl"):
        track_video(never_called, clip, tmp_path / "out.mp4")
    assert log.read_text() == "my notes\n" and not (tmp_path / "out.mp4").exists()
    json.loads(mine.with_suffix(".jsonl").read_text().splitlines()[0])
    # a folder where the video would go
    (tmp_path / "dir.mp4").mkdir()
    with pytest.raises(UsageError, match="dir.mp4"):
        track_video(never_called, clip, tmp_path / "dir.mp4", overwrite=True)


def test_save_whose_parent_is_a_file_is_one_line(clip: Path, tmp_path: Path):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(UsageError) as exc:
        track_video(never_called, clip, tmp_path / "afile" / "out.mp4")
    assert "afile" in str(exc.value) and "\n" not in str(exc.value)
    assert (tmp_path / "afile").read_text() == "x"


def test_cli_save_refuses_a_users_file_unless_overwrite(clip: Path, tmp_path: Path, capsys,
                                                       monkeypatch):
    from taskzoo.cli import main

    monkeypatch.setenv("TASKZOO_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
    Path("X.avi").write_bytes(b"precious")
    assert main(["predict", "detection", "clip.mp4", "--save", "X.avi"]) == 2
    err = capsys.readouterr().err
    assert "X.avi" in err and "--overwrite" in err and len(err.strip().splitlines()) == 1
    assert Path("X.avi").read_bytes() == b"precious" and not Path("X.jsonl").exists()
    assert main(["predict", "detection", "clip.mp4", "--save", "X.avi", "--overwrite"]) == 0
    assert len(decode(tmp_path / "X.avi")) == N
    assert main(["predict", "detection", "clip.mp4", "--save", "X.avi"]) == 0  # ours: replaced
    capsys.readouterr()
    Path("afile").write_text("x")
    assert main(["predict", "detection", "clip.mp4", "--save", "afile/out.mp4"]) == 2
    err = capsys.readouterr().err
    assert "afile" in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
