"""Flickr8k (128x128) through the hub, the gzipped manifest, Lab colour helpers, and a plain
folder of a user's images (`load_image_files`)."""

from __future__ import annotations

import io
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from taskzoo import hub
from taskzoo.data import color
from taskzoo.data import flickr8k as fk
from taskzoo.data.image_files import IMAGE_EXTENSIONS, load_image_files
from taskzoo.errors import DataError, DownloadError, InputError, OfflineError, UsageError

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def flickr(shared_data, monkeypatch) -> Path:
    """The mirror set to the shared data (the cache is the session's private TASKZOO_HOME:
    the first test to load Flickr8k copies and verifies the 8,009 files, the rest reuse it)."""
    monkeypatch.setenv("TASKZOO_MIRROR", str(shared_data))
    return shared_data / "Flickr8k"


# ---------------------------------------------------------------- manifest


def test_manifest_matches_the_shared_checksums(shared_data):
    sums = {}
    for line in (shared_data / "SHA256SUMS").read_text().splitlines():
        digest, path = line.split("  ", 1)
        if path.startswith("Flickr8k/"):
            sums[path.removeprefix("Flickr8k/")] = digest
    folder = fk.flickr8k_folder()
    assert folder.name == "Flickr8k" and folder.archives == ()  # no public URL
    assert len(folder.manifest) == len(sums) == 8_009
    assert {rel: digest for rel, digest, _ in folder.manifest} == sums
    root = shared_data / "Flickr8k"
    assert all((root / rel).stat().st_size == size for rel, _, size in folder.manifest)
    jpgs = [rel for rel, _, _ in folder.manifest if rel.startswith("Flickr8k_128/")]
    assert len(jpgs) == 8_000 and all(rel.endswith(".jpg") for rel in jpgs)
    assert sum(size for rel, _, size in folder.manifest if rel in jpgs) == 44_276_972


def test_gzipped_manifest_write_read_roundtrip(tmp_path):
    m = (("a/b.txt", "ab" * 32, 3), ("c d.bin", "cd" * 32, 0))
    hub.write_manifest(tmp_path / "m.txt.gz", m, comment="gzipped")
    raw = (tmp_path / "m.txt.gz").read_bytes()
    assert raw[:2] == b"\x1f\x8b"  # gzip, reproducibly: same bytes when written again
    hub.write_manifest(tmp_path / "again.txt.gz", m, comment="gzipped")
    assert (tmp_path / "again.txt.gz").read_bytes() == raw
    assert hub.read_manifest(tmp_path / "m.txt.gz") == m
    hub.write_manifest(tmp_path / "m.txt", m)
    assert hub.read_manifest(tmp_path / "m.txt") == m  # plain text still plain
    (tmp_path / "bad.txt.gz").write_bytes(b"not gzip at all")
    with pytest.raises(DataError, match="cannot read the manifest .*bad.txt.gz"):
        hub.read_manifest(tmp_path / "bad.txt.gz")


# ---------------------------------------------------------------- loading


@pytest.mark.slow  # the first load copies and hashes 8,009 files: ~10 s
def test_splits_through_the_hub(flickr):
    splits = {s: fk.load_flickr8k(s) for s in ("train", "dev", "test")}
    assert {s: len(v) for s, v in splits.items()} == {"train": 6_000, "dev": 1_000,
                                                      "test": 1_000}
    names = {s: v.names for s, v in splits.items()}
    for s, v in splits.items():
        listed = (flickr / "Flickr8k_text" / f"Flickr_8k.{s}Images.txt").read_text().split()
        assert names[s] == sorted(listed)  # the standard list, sorted by file name
        assert len(v.captions) == len(v) and {len(c) for c in v.captions} == {5}
        assert all(c and c == c.strip() for caps in v.captions for c in caps)
        assert v.images.channels == 3 and v.images.classes == ["image"]
        assert v.images.arrays is None and set(v.images.labels.tolist()) == {0}
    assert not set(names["train"]) & set(names["dev"])
    assert not set(names["train"]) & set(names["test"])
    assert len(set().union(*names.values())) == 8_000
    cache = hub.cached_folder(fk.flickr8k_folder())
    assert splits["train"].images.paths[0].parent == cache / "Flickr8k_128"

    # a known caption, read straight from the token file
    train = splits["train"]
    name = train.names[17]
    token = (flickr / "Flickr8k_text" / "Flickr8k.token.txt").read_text(encoding="utf-8")
    mine = dict(line.split("\t", 1) for line in token.splitlines()
                if line.startswith(name + "#"))
    assert train.captions[17] == [mine[f"{name}#{k}"].strip() for k in range(5)]
    assert fk.read_captions(flickr / "Flickr8k_text" / "Flickr8k.token.txt").keys() >= \
        set(train.names)

    # the images themselves: 128x128 RGB (a seeded sample)
    for s, v in splits.items():
        for i in random.Random(s).sample(range(len(v)), 40):
            img = v.images.image(i)
            assert img.mode == "RGB" and img.size == (128, 128)


def test_captions_skip_keys_that_are_not_jpg(tmp_path):
    token = tmp_path / "t.txt"
    token.write_text("a.jpg#1\t second \na.jpg#0\tfirst\nb.jpg.1#0\tstray\n\n", encoding="utf-8")
    assert fk.read_captions(token) == {"a.jpg": ["first", "second"]}
    token.write_text("a.jpg#0 no tab\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"t.txt:1: expected"):
        fk.read_captions(token)
    token.write_text("a.jpg#0\tx\na.jpg#0\ty\n", encoding="utf-8")
    with pytest.raises(DataError, match="given twice"):
        fk.read_captions(token)


def test_bad_split_name():
    with pytest.raises(UsageError, match=r"'train', 'dev', 'test', got 'tset'.*'test'"):
        fk.load_flickr8k("tset")
    with pytest.raises(UsageError, match="got 'validation'"):
        fk.load_flickr8k("validation")


def test_offline_error_says_where_to_put_it_and_how_to_get_it(monkeypatch, tmp_path):
    monkeypatch.setenv("TASKZOO_HOME", str(tmp_path / "empty_home"))
    monkeypatch.setenv("TASKZOO_OFFLINE", "1")
    with pytest.raises(OfflineError) as e:
        fk.load_flickr8k("dev")
    msg = str(e.value)
    assert "folder Flickr8k/Flickr8k (8009 files" in msg
    assert str(hub.cached_folder(fk.flickr8k_folder())) in msg
    assert "TASKZOO_MIRROR/Flickr8k/" in msg and "Flickr8k_128/" in msg
    assert "Flickr8k_text/" in msg and "distributed on request" in msg
    assert fk.FLICKR8K_URL in msg and "no public URL" in msg


def test_missing_error_without_a_mirror_or_with_an_empty_one(monkeypatch, tmp_path):
    monkeypatch.setenv("TASKZOO_HOME", str(tmp_path / "empty_home"))
    with pytest.raises(DownloadError, match=r"(?s)no mirror is set.*distributed on request"):
        fk.load_flickr8k("train")
    (tmp_path / "mirror").mkdir()
    monkeypatch.setenv("TASKZOO_MIRROR", str(tmp_path / "mirror"))
    with pytest.raises(DownloadError, match=r"(?s)no folder .*mirror.*Flickr8k.*"
                                            r"TASKZOO_MIRROR/Flickr8k/"):
        fk.load_flickr8k("train")


# ---------------------------------------------------------------- colour

PURE = np.array([[[0, 0, 0], [255, 255, 255], [255, 0, 0], [0, 255, 0], [0, 0, 255],
                  [0, 255, 255], [255, 0, 255], [255, 255, 0], [128, 128, 128],
                  [1, 2, 3], [250, 128, 7]]], np.uint8)


def real_images(shared_data: Path, n: int = 4) -> list[np.ndarray]:
    files = sorted((shared_data / "Flickr8k" / "Flickr8k_128").glob("*.jpg"))
    return [np.asarray(Image.open(p).convert("RGB")) for p in files[:: len(files) // n][:n]]


def test_lab_round_trip_on_pure_colours():
    lab = color.rgb_to_lab(PURE)
    assert lab.dtype == np.float32 and lab.shape == PURE.shape
    assert abs(lab[0, 0, 0]) < 1e-3 and abs(lab[0, 1, 0] - 100) < 1e-3  # black, white
    assert np.abs(lab[0, :2, 1:]).max() < 0.01 and np.abs(lab[0, 8, 1:]).max() < 0.01  # neutral
    assert lab[0, 2, 1] > 75 and lab[0, 3, 1] < -80 and lab[0, 4, 2] < -100  # red, green, blue
    assert np.abs(lab[..., 1:]).max() < color.AB_SCALE
    back = color.lab_to_rgb(lab)
    assert back.dtype == np.uint8 and np.array_equal(back, PURE)
    # a whole batch at once, and a colour far outside sRGB: clipped, no warning
    batch = np.stack([PURE, PURE[:, ::-1]])
    assert np.array_equal(color.lab_to_rgb(color.rgb_to_lab(batch)), batch)
    with __import__("warnings").catch_warnings():
        __import__("warnings").simplefilter("error")
        wild = color.lab_to_rgb(np.array([[[50, 300, -300], [150, 0, 0], [-5, 0, 0]]], float))
    assert wild[0, 1].tolist() == [255, 255, 255] and wild[0, 2].tolist() == [0, 0, 0]
    with pytest.raises(InputError, match="uint8 RGB"):
        color.rgb_to_lab(PURE.astype(np.float32))
    with pytest.raises(InputError, match="uint8 RGB"):
        color.rgb_to_lab(np.zeros((4, 4), np.uint8))


def test_lab_round_trip_on_real_images(shared_data):
    for rgb in real_images(shared_data):
        back = color.lab_to_rgb(color.rgb_to_lab(rgb))
        err = np.abs(back.astype(int) - rgb)
        assert err.mean() <= 0.1 and err.max() <= 2


def test_split_and_merge_lab_invert_each_other(shared_data):
    imgs = real_images(shared_data, 3)
    L, ab = color.split_lab(imgs[0])
    assert L.shape == (1, 128, 128) and ab.shape == (2, 128, 128)
    assert L.dtype == ab.dtype == torch.float32
    assert -1.0 <= float(L.min()) and float(L.max()) <= 1.0 and float(ab.abs().max()) < 1.0
    lab = color.rgb_to_lab(imgs[0])
    assert torch.allclose(L[0], torch.from_numpy(lab[..., 0] / 50 - 1), atol=1e-6)
    assert torch.allclose(ab[1], torch.from_numpy(lab[..., 2] / 110), atol=1e-6)
    one = color.merge_lab(L, ab)
    assert one.shape == (128, 128, 3) and one.dtype == np.uint8
    assert np.abs(one.astype(int) - imgs[0]).mean() <= 0.1
    pairs = [color.split_lab(x) for x in imgs]
    Ls, abs_ = torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs])
    out = color.merge_lab(Ls, abs_)
    assert out.shape == (3, 128, 128, 3)
    assert np.abs(out.astype(int) - np.stack(imgs)).max() <= 2
    assert np.array_equal(color.merge_lab(Ls.numpy(), abs_.numpy()), out)  # arrays too
    black = color.merge_lab(torch.full((1, 1, 2, 2), -5.0), torch.zeros(1, 2, 2, 2))
    assert black.max() == 0  # L clipped to 0
    with pytest.raises(InputError, match="merge_lab expects"):
        color.merge_lab(Ls, abs_[:, :1])
    with pytest.raises(InputError, match="one image"):
        color.split_lab(np.stack(imgs))


def test_gray_rgb_has_equal_channels(shared_data):
    for rgb in [PURE, *real_images(shared_data, 2)]:
        g = color.gray_rgb(rgb)
        assert g.shape == rgb.shape and g.dtype == np.uint8
        assert np.array_equal(g[..., 0], g[..., 1]) and np.array_equal(g[..., 1], g[..., 2])
        # same lightness as the original (to rounding)
        diff = color.rgb_to_lab(g)[..., 0] - color.rgb_to_lab(rgb)[..., 0]
        assert np.abs(diff).max() < 0.5
    grey = np.repeat(np.arange(256, dtype=np.uint8).reshape(16, 16, 1), 3, axis=-1)
    assert np.array_equal(color.gray_rgb(grey), grey)  # a grey image is its own grey


# ---------------------------------------------------------------- a plain folder of images


def save(img: Image.Image, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)
    return path


def test_image_files_nested_with_bad_and_odd_files(tmp_path):
    root = tmp_path / "photos"
    rgb = Image.fromarray(np.random.default_rng(0).integers(0, 256, (8, 8, 3), np.uint8))
    save(rgb, root / "10.png")
    save(rgb, root / "2.jpg")
    save(Image.new("L", (8, 8), 9), root / "a" / "grey.png")
    save(Image.new("CMYK", (8, 8), (0, 255, 255, 0)), root / "a" / "b" / "cmyk.jpg")
    (root / "a" / "corrupt.png").write_bytes(random.Random(0).randbytes(300))
    buf = io.BytesIO()
    rgb.resize((64, 64)).save(buf, "JPEG")
    (root / "a" / "b" / "cut.jpeg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    (root / ".hidden.png").write_bytes(b"junk")  # hidden: ignored, not even skipped
    (root / ".cache").mkdir()
    save(rgb, root / ".cache" / "x.png")
    (root / "notes.txt").write_text("not an image")

    s = load_image_files(root)
    rel = [p.relative_to(root).as_posix() for p in s.paths]
    assert rel == ["2.jpg", "10.png", "a/grey.png", "a/b/cmyk.jpg"]  # natural order
    assert s.classes == ["image"] and s.labels.tolist() == [0] * 4 and s.channels == 3
    skipped = dict(s.skipped)
    assert sorted(skipped) == [str(root / "a" / "b" / "cut.jpeg"), str(root / "a" / "corrupt.png")]
    assert "cannot identify" in skipped[str(root / "a" / "corrupt.png")]
    cmyk = s.image(3)
    assert cmyk.mode == "RGB" and cmyk.getpixel((3, 3))[0] > 240  # CMYK converted to RGB
    assert s.image(2).mode == "RGB"  # grey converted: the set is colour

    top = load_image_files(root, recursive=False)
    assert [p.name for p in top.paths] == ["2.jpg", "10.png"] and top.skipped == []


def test_image_files_grey_only_is_one_channel(tmp_path):
    for k in range(3):
        save(Image.new("L", (6, 5), 40 * k), tmp_path / "g" / f"{k}.png")
    save(Image.new("1", (6, 5), 1), tmp_path / "g" / "sub" / "bilevel.png")
    s = load_image_files(tmp_path / "g")
    assert len(s) == 4 and s.channels == 1 and s.image(3).mode == "L"


def test_image_files_errors(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_image_files(tmp_path / "missing")
    (tmp_path / "file.png").write_bytes(b"x")
    with pytest.raises(DataError, match="not a folder"):
        load_image_files(tmp_path / "file.png")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no images found") as e:
        load_image_files(tmp_path / "empty")
    assert all(ext in str(e.value) for ext in IMAGE_EXTENSIONS)
    (tmp_path / "bad" / "deep").mkdir(parents=True)
    (tmp_path / "bad" / "x.png").write_bytes(b"junk")
    with pytest.raises(DataError, match=r"no images found.*1 files could not be read.*x\.png"):
        load_image_files(tmp_path / "bad")
    save(Image.new("L", (4, 4)), tmp_path / "nested" / "sub" / "a.png")
    with pytest.raises(DataError, match=r"recursive=False"):
        load_image_files(tmp_path / "nested", recursive=False)
