"""taskzoo.data.images: IDX reader, MNIST / Fashion-MNIST / ORL through the hub, digits, and
a user's image folder (conversions, unreadable files, seeded stratified splits, errors)."""

from __future__ import annotations

import io
import random
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from taskzoo import hub
from taskzoo.data import images as im
from taskzoo.data.image_files import load_image_folder, read_image
from taskzoo.data.images import ImageSet, read_idx
from taskzoo.errors import DataError, OfflineError, UsageError

pytestmark = pytest.mark.timeout(60)

MNIST_TRAIN = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


# ---------------------------------------------------------------- IDX


def idx(magic: int, dims: tuple[int, ...], payload: bytes) -> bytes:
    return struct.pack(f">I{len(dims)}I", magic, *dims) + payload


def test_read_idx_good_and_malformed(tmp_path):
    pixels = bytes(range(12))
    (tmp_path / "img").write_bytes(idx(2051, (3, 2, 2), pixels))
    (tmp_path / "lab").write_bytes(idx(2049, (3,), bytes([2, 0, 1])))
    x = read_idx(tmp_path / "img", magic=2051)
    assert x.shape == (3, 2, 2) and x.dtype == np.uint8 and x.ravel().tolist() == list(range(12))
    assert read_idx(tmp_path / "lab", magic=2049).tolist() == [2, 0, 1]
    # other element types are big-endian in the file and native in memory
    (tmp_path / "i16").write_bytes(idx(0x0B02, (2, 2), struct.pack(">4h", 1, -2, 300, 4)))
    y = read_idx(tmp_path / "i16")
    assert y.tolist() == [[1, -2], [300, 4]] and y.dtype.isnative

    s = im.idx_image_set(tmp_path / "img", tmp_path / "lab", ["a", "b", "c"], 3, "tiny")
    assert s.arrays.shape == (3, 2, 2) and s.labels.tolist() == [2, 0, 1] and s.channels == 1

    cases = {
        "wrong magic": (idx(2049, (3,), b"\0\0\0"), "IDX magic 2049, expected 2051"),
        "not idx": (b"\x89PNG\r\n\x1a\n" + bytes(20), "not an IDX file"),
        "truncated": (idx(2051, (3, 2, 2), pixels[:-1]), "truncated: 27 bytes"),
        "trailing": (idx(2051, (3, 2, 2), pixels + b"\0"), "longer than its header says"),
        "short header": (struct.pack(">II", 2051, 3), "IDX header truncated"),
        "tiny": (b"\0\0", "only 2 bytes"),
    }
    for name, (data, why) in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(DataError, match=why):
            read_idx(tmp_path / name, magic=2051)
    with pytest.raises(DataError, match="cannot read"):
        read_idx(tmp_path / "absent")
    (tmp_path / "lab2").write_bytes(idx(2049, (2,), bytes([0, 1])))
    with pytest.raises(DataError, match="3 images .* but 2 labels"):
        im.idx_image_set(tmp_path / "img", tmp_path / "lab2", ["a", "b", "c"], 3, "tiny")
    with pytest.raises(DataError, match="expected 4 images, read 3"):
        im.idx_image_set(tmp_path / "img", tmp_path / "lab", ["a", "b", "c"], 4, "tiny")
    with pytest.raises(DataError, match="label 2 out of range"):
        im.idx_image_set(tmp_path / "img", tmp_path / "lab", ["a", "b"], 3, "tiny")
    with pytest.raises(UsageError, match="'train' or 'test'"):
        im.load_mnist("validation")


# ---------------------------------------------------------------- real datasets via the hub


def test_mnist_counts_through_the_hub(shared_data, monkeypatch):
    monkeypatch.setenv("TASKZOO_MIRROR", str(shared_data))
    train, test = im.load_mnist("train"), im.load_mnist("test")
    assert train.arrays.shape == (60_000, 28, 28) and train.arrays.dtype == np.uint8
    assert test.arrays.shape == (10_000, 28, 28)
    assert np.bincount(train.labels).tolist() == MNIST_TRAIN
    assert np.bincount(test.labels).tolist() == MNIST_TEST
    assert train.classes == [str(d) for d in range(10)] and train.channels == 1
    assert abs(train.arrays.mean() / 255 - 0.1307) < 5e-4
    # the cache holds the decompressed files, pinned by their content (train-images was
    # recompressed for the mirror: its .gz hash is not the official one)
    cached = hub.cached_path(im.MNIST_FILES["train-images"])
    assert cached.name == "train-images-idx3-ubyte" and cached.stat().st_size == 47_040_016
    card = hub.describe(im.MNIST_FILES)
    assert [c["name"] for c in card][:2] == ["train-images-idx3-ubyte.gz",
                                             "train-labels-idx1-ubyte.gz"]
    assert all(c["gunzip"] for c in card)


def test_fashion_mnist_counts_from_the_debian_folder():
    if not im.FASHION_MNIST_DEBIAN.is_dir():
        pytest.skip(f"needs the Debian package dataset-fashion-mnist "
                    f"({im.FASHION_MNIST_DEBIAN} is absent)")
    train, test = im.load_fashion_mnist("train"), im.load_fashion_mnist("test")
    assert train.arrays.shape == (60_000, 28, 28) and test.arrays.shape == (10_000, 28, 28)
    assert np.bincount(train.labels).tolist() == [6000] * 10
    assert np.bincount(test.labels).tolist() == [1000] * 10
    assert train.classes == ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
                             "Shirt", "Sneaker", "Bag", "Ankle boot"]
    assert abs(train.arrays.mean() / 255 - 0.2860) < 5e-4


def test_orl_manifest_matches_the_shared_checksums(shared_data):
    sums = {}
    for line in (shared_data / "SHA256SUMS").read_text().splitlines():
        digest, path = line.split("  ", 1)
        if path.startswith("att_faces/"):
            sums[path.removeprefix("att_faces/")] = digest
    folder = im.orl_folder()
    assert len(folder.manifest) == 401
    assert {rel: digest for rel, digest, _ in folder.manifest} == sums
    assert {size for rel, _, size in folder.manifest if rel != "README"} == {10_318}
    assert folder.archives[0].urls == (im.ORL_URL,) and folder.archives[0].sha256 == ""


def test_orl_through_the_hub(shared_data, monkeypatch):
    monkeypatch.setenv("TASKZOO_MIRROR", str(shared_data))
    faces = im.load_orl()
    assert len(faces) == 400 and faces.arrays.shape == (400, 112, 92)
    assert faces.classes == [f"s{i}" for i in range(1, 41)]  # numeric, not string, order
    assert np.bincount(faces.labels).tolist() == [10] * 40
    assert faces.labels[:11].tolist() == [0] * 10 + [1]
    assert faces.index_in_class[:11].tolist() == [*range(1, 11), 1]
    assert faces.image(0).mode == "L" and faces.image(0).size == (92, 112)
    assert len({a.tobytes() for a in faces.arrays}) == 400  # all distinct
    first = faces.subset(np.flatnonzero(faces.index_in_class <= 5))
    assert len(first) == 200 and np.bincount(first.labels).tolist() == [5] * 40
    assert hub.fetch_folder(im.orl_folder(), group="att_faces").is_dir()


def test_orl_offline_error_says_where_to_put_it(monkeypatch, tmp_path):
    monkeypatch.setenv("TASKZOO_HOME", str(tmp_path / "empty_home"))
    monkeypatch.setenv("TASKZOO_OFFLINE", "1")
    with pytest.raises(OfflineError) as e:
        im.load_orl()
    msg = str(e.value)
    assert "folder att_faces/att_faces (401 files" in msg and "<dir>/att_faces/" in msg
    assert str(hub.cached_folder(im.orl_folder())) in msg and im.ORL_URL in msg


def test_digits():
    d = im.load_digits()
    assert d.arrays.shape == (1797, 8, 8) and d.arrays.dtype == np.uint8
    assert d.arrays.max() == 255 and d.arrays.min() == 0
    assert d.classes == [str(i) for i in range(10)] and len(d) == 1797
    assert np.bincount(d.labels).sum() == 1797 and d.image(5).mode == "L"


# ---------------------------------------------------------------- read_image conversions


def save(img: Image.Image, path: Path, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, **kw)
    return path


def palette_png(path: Path) -> Path:
    p = Image.new("P", (8, 8), 0)
    p.putpalette([0, 0, 200, 250, 10, 10] + [0] * 762)
    p.putpixel((0, 0), 1)
    p.info["transparency"] = 0  # index 0 (the blue) is transparent
    return save(p, path, transparency=0)


def test_read_image_conversions(tmp_path):
    deep = np.full((8, 8), 0x1234, np.uint16)
    deep[0, 0] = 0xFFFF
    img = read_image(save(Image.fromarray(deep), tmp_path / "deep.png"))
    assert img.mode == "L" and np.asarray(img)[1, 1] == 0x12 and np.asarray(img)[0, 0] == 255
    pal = read_image(palette_png(tmp_path / "pal.png"))
    assert pal.mode == "RGB" and pal.getpixel((1, 1)) == (255, 255, 255)  # transparent: white
    assert pal.getpixel((0, 0)) == (250, 10, 10)
    cmyk = read_image(save(Image.new("CMYK", (8, 8), (0, 255, 255, 0)), tmp_path / "c.jpg"))
    r, g, b = cmyk.getpixel((4, 4))
    assert cmyk.mode == "RGB" and r > 240 and g < 15 and b < 15
    rgba = Image.new("RGBA", (2, 1), (0, 0, 0, 0))
    rgba.putpixel((1, 0), (0, 0, 0, 128))
    flat = read_image(save(rgba, tmp_path / "a.png"))
    assert flat.mode == "RGB" and flat.getpixel((0, 0)) == (255, 255, 255)
    assert flat.getpixel((1, 0))[0] in (126, 127, 128)  # half black over white
    la = read_image(save(Image.new("LA", (2, 2), (0, 0)), tmp_path / "la.png"))
    assert la.mode == "L" and la.getpixel((0, 0)) == 255
    one = read_image(save(Image.new("1", (2, 2), 1), tmp_path / "one.png"))
    assert one.mode == "L" and one.getpixel((0, 0)) == 255
    i32 = Image.fromarray(np.array([[0x1234, 70_000], [-5, 255]], np.int32))
    assert np.asarray(read_image(save(i32, tmp_path / "i.tif"))).tolist() == [[0x12, 255], [0, 0]]
    for values, want in [([[0.0, 0.5], [1.0, np.nan]], [[0, 128], [255, 0]]),
                         ([[0.0, 100.0], [255.0, 300.0]], [[0, 100], [255, 255]])]:
        f = Image.fromarray(np.array(values, np.float32))
        assert np.asarray(read_image(save(f, tmp_path / "f.tif"))).tolist() == want
    (tmp_path / "junk.png").write_bytes(b"not an image at all")
    with pytest.raises(DataError, match=r"cannot read image .*junk\.png"):
        read_image(tmp_path / "junk.png")
    with pytest.raises(DataError, match="no such file"):
        read_image(tmp_path / "absent.png")


# ---------------------------------------------------------------- image folders


def digits_folder(root: Path, classes: int = 5, per_class: int = 10) -> Path:
    d = im.load_digits()
    for c in range(classes):
        for k, i in enumerate(np.flatnonzero(d.labels == c)[:per_class]):
            save(Image.fromarray(d.arrays[i]), root / str(c) / f"{k}.png")
    return root


def test_image_folder_with_bad_and_odd_files(tmp_path):
    root = digits_folder(tmp_path / "ds")
    for c in (2, 3, 4):  # one digit each replaced by an odd but readable file: still 10 per class
        (root / str(c) / "9.png").unlink()
    save(Image.new("CMYK", (8, 8), (0, 255, 255, 0)), root / "2" / "cmyk.jpg")
    save(Image.fromarray(np.full((8, 8), 0x1234, np.uint16)), root / "3" / "deep.png")
    palette_png(root / "4" / "palette.png")
    (root / "0" / "corrupt.png").write_bytes(random.Random(0).randbytes(500))
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), np.uint8))
    buf = io.BytesIO()
    noise.save(buf, "JPEG", quality=90)
    (root / "1" / "truncated.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) * 6 // 10])
    (root / "1" / ".hidden.png").write_bytes(b"junk")  # hidden: ignored, not even skipped
    (root / ".cache").mkdir()
    (root / ".cache" / "x.png").write_bytes(b"junk")
    (root / "notes.txt").write_text("not an image")
    (root / "0" / "readme.md").write_text("not an image")
    save(Image.fromarray(np.zeros((8, 8), np.uint8)), root / "stray.png")

    splits = load_image_folder(root, seed=0, val_fraction=0.2)
    train, val = splits["train"], splits["val"]
    assert sorted(splits) == ["train", "val"]
    assert train.classes == val.classes == ["0", "1", "2", "3", "4"]
    assert len(train) == 40 and len(val) == 10
    assert np.bincount(val.labels).tolist() == [2] * 5  # stratified
    assert np.bincount(train.labels).tolist() == [8] * 5
    assert train.arrays is None and all(isinstance(p, Path) for p in train.paths)
    skipped = dict(train.skipped)
    assert sorted(skipped) == sorted(str(root / p) for p in
                                     ("0/corrupt.png", "1/truncated.jpg", "stray.png"))
    assert "truncated" in skipped[str(root / "1/truncated.jpg")]
    assert "cannot identify" in skipped[str(root / "0/corrupt.png")]
    assert skipped[str(root / "stray.png")] == "not inside a class folder"
    assert val.skipped == []
    # colour files make it a 3-channel set: every image is read as RGB, grey ones converted
    assert train.channels == val.channels == 3
    both = [(s, i) for s in (train, val) for i in range(len(s))]
    assert {s.image(i).mode for s, i in both} == {"RGB"}
    every = {p.name: (s, i) for s, i in both for p in [s.paths[i]]}
    for name, want in [("deep.png", (0x12, 0x12, 0x12)), ("palette.png", (255, 255, 255))]:
        s, i = every[name]
        assert s.image(i).getpixel((3, 3)) == want
    s, i = every["cmyk.jpg"]
    assert s.image(i).getpixel((3, 3))[0] > 240

    again = load_image_folder(root, seed=0, val_fraction=0.2)
    assert again["val"].paths == val.paths and again["train"].paths == train.paths
    other = load_image_folder(root, seed=1, val_fraction=0.2)
    assert other["val"].paths != val.paths
    assert np.bincount(other["val"].labels).tolist() == [2] * 5
    assert list(load_image_folder(root, val_fraction=0)) == ["train"]


def test_image_folder_presplit_layout(tmp_path):
    root = tmp_path / "ds"
    digits_folder(root / "train", classes=3, per_class=4)
    digits_folder(root / "val", classes=2, per_class=2)
    digits_folder(root / "test", classes=3, per_class=1)
    splits = load_image_folder(root)
    assert sorted(splits) == ["test", "train", "val"]
    assert [len(splits[k]) for k in ("train", "val", "test")] == [12, 4, 3]
    assert splits["val"].classes == ["0", "1", "2"] and splits["val"].labels.tolist() == \
        [0, 0, 1, 1]
    assert splits["train"].channels == 1 and splits["train"].image(0).mode == "L"
    digits_folder(root / "val", classes=4, per_class=1)  # class "3" is not a train class
    with pytest.raises(DataError, match=r"classes \['3'\] have no images in .*train"):
        load_image_folder(root)
    # train without val: val is split off train, stratified
    root2 = tmp_path / "ds2"
    digits_folder(root2 / "train", classes=2, per_class=5)
    s2 = load_image_folder(root2, val_fraction=0.4)
    assert np.bincount(s2["val"].labels).tolist() == [2, 2]


def test_image_folder_errors(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_image_folder(tmp_path / "missing")
    (tmp_path / "file.png").write_bytes(b"x")
    with pytest.raises(DataError, match="not a folder"):
        load_image_folder(tmp_path / "file.png")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no images found"):
        load_image_folder(tmp_path / "empty")
    (tmp_path / "texts" / "a").mkdir(parents=True)
    (tmp_path / "texts" / "a" / "x.txt").write_text("hello")
    (tmp_path / "texts" / "b").mkdir()
    (tmp_path / "texts" / "b" / "bad.png").write_bytes(b"junk")
    with pytest.raises(DataError, match=r"no images found.*1 files could not be read"):
        load_image_folder(tmp_path / "texts")
    with pytest.raises(DataError, match=r"only one class \('0', 10 images\)"):
        load_image_folder(digits_folder(tmp_path / "one", classes=1))
    lonely = digits_folder(tmp_path / "lonely", classes=2, per_class=5)
    for p in list((lonely / "1").iterdir())[1:]:
        p.unlink()
    with pytest.raises(DataError, match="class '1' has only one image"):
        load_image_folder(lonely)
    with pytest.raises(UsageError, match="val_fraction"):
        load_image_folder(lonely, val_fraction=1.5)


def test_image_set_checks_itself():
    with pytest.raises(DataError, match="either arrays or paths"):
        ImageSet(labels=np.array([0]), classes=["a"])
    with pytest.raises(DataError, match="2 images but 1 labels"):
        ImageSet(labels=np.array([0]), classes=["a"], arrays=np.zeros((2, 3, 3), np.uint8))
    with pytest.raises(DataError, match="labels must lie in 0..0"):
        ImageSet(labels=np.array([1]), classes=["a"], arrays=np.zeros((1, 3, 3), np.uint8))
    with pytest.raises(DataError, match=r"\[N, H, W, 3\]"):
        ImageSet(labels=np.array([0]), classes=["a"], arrays=np.zeros((1, 3, 3), np.uint8),
                 channels=3)
    rgb = ImageSet(labels=np.array([0]), classes=["a"], channels=3,
                   arrays=np.zeros((1, 3, 3, 3), np.uint8))
    assert rgb.image(0).mode == "RGB"
