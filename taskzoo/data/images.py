"""Image datasets behind one return type, `ImageSet`: MNIST, Fashion-MNIST, the AT&T/ORL
faces, scikit-learn's 8x8 digits, a user's own class-per-folder images (`load_image_folder`)
and a user's plain folder of images without classes (`load_image_files`, for autoencoders).

    >>> from taskzoo.data.images import load_mnist, load_image_folder
    >>> train = load_mnist("train")                      # doctest: +SKIP
    >>> train.arrays.shape, train.classes[:3]            # doctest: +SKIP
    ((60000, 28, 28), ['0', '1', '2'])
    >>> splits = load_image_folder("my_photos")          # doctest: +SKIP
    >>> splits["train"].paths[0], splits["val"].channels  # doctest: +SKIP

The real datasets come through the verified hub (`taskzoo.hub`): MNIST and Fashion-MNIST as
gzip files pinned by their decompressed content (mirrors and the Debian package recompress
them), the ORL faces as a folder pinned by a manifest (`taskzoo/data/manifests/`).

`read_image` turns every image into mode "L" (grey) or "RGB", with these conversions:

- "1" (bilevel) -> "L" (0 and 255). "L" is kept.
- "LA" -> "L" and "RGBA" -> "RGB", composited on white: a transparent pixel is white.
- "P"/"PA" (palette) -> "RGBA" (palette transparency becomes alpha) -> composited on white
  -> "RGB", even when every palette entry is grey: a palette image counts as colour.
- "CMYK", "YCbCr", "LAB", "HSV", "RGBX" -> "RGB" (Pillow's conversion).
- 16-bit grey ("I;16", "I;16B", "I;16L", ...): the full 0..65535 range onto 0..255 by
  keeping the top byte (`>> 8`), so 0x1234 becomes 0x12 (no per-image stretching: the same
  value always gives the same grey).
- 32-bit integer grey ("I"): Pillow opens some 16-bit PNG and TIFF files as "I", so its
  values are read as 16-bit (clipped to 0..65535, then `>> 8`); scaling the full int32 range
  would turn every such image black.
- float grey ("F"): taken as 0..1 when its largest value is at most 1 (scaled by 255), else
  as 0..255; then clipped, rounded, and NaN becomes 0.
- Multi-frame files (GIF, TIFF): the first frame. The EXIF orientation tag is applied, so
  phone photos come out upright.

An ImageSet's `channels` is 1 when every image is grey ("L"), else 3, and then grey images
are converted to RGB when read (`ImageSet.image`).
"""

from __future__ import annotations

import functools
import importlib.resources
import os
import re
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from taskzoo import hub
from taskzoo.errors import DataError, UsageError

if TYPE_CHECKING:
    from PIL import Image

__all__ = ["ImageSet", "read_image", "read_idx", "load_mnist", "load_fashion_mnist",
           "load_orl", "load_digits", "load_image_folder", "LICENSES", "example_images", "load_image_files",
           "IMAGE_EXTENSIONS", "MNIST_FILES", "FASHION_MNIST_FILES", "FASHION_MNIST_CLASSES",
           "orl_folder"]

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff",
                              ".webp", ".pgm", ".ppm", ".pnm"})


@dataclass
class ImageSet:
    """One split of an image dataset: decoded in memory (`arrays`) or files read on demand (`paths`).

    >>> s = ImageSet(labels=np.array([0, 1]), classes=["a", "b"],
    ...              arrays=np.zeros((2, 4, 4), np.uint8))
    >>> len(s), s.image(1).mode, s.image(1).size
    (2, 'L', (4, 4))
    """

    labels: np.ndarray  # int64 [N]
    classes: list[str]  # class names; index = label id
    arrays: np.ndarray | None = None  # uint8 [N, H, W] (grey) or [N, H, W, 3] (RGB)
    paths: list[Path] | None = None  # image files, decoded by read_image() when needed
    channels: int = 1  # 1 (grey) or 3 (RGB): what the model's in_channels will be
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason) left out
    # int64 [N]: the image's number within its class where the dataset defines one (ORL:
    # the file name 1..10, which the face-recognition protocol splits 5/5); else None
    index_in_class: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.labels = np.asarray(self.labels, dtype=np.int64)
        n = len(self.labels)
        if (self.arrays is None) == (self.paths is None):
            raise DataError("an ImageSet holds either arrays or paths (exactly one of them)")
        if self.channels not in (1, 3):
            raise DataError(f"ImageSet channels must be 1 or 3, got {self.channels}")
        if self.arrays is not None:
            shape = self.arrays.shape
            if self.arrays.dtype != np.uint8 or len(shape) != (3 if self.channels == 1 else 4) \
                    or (self.channels == 3 and shape[-1] != 3):
                raise DataError(f"ImageSet arrays must be uint8 [N, H, W] (grey) or "
                                f"[N, H, W, 3] (RGB), got {self.arrays.dtype} {shape} with "
                                f"channels={self.channels}")
        held = len(self.arrays) if self.arrays is not None else len(self.paths or ())
        if held != n:
            raise DataError(f"ImageSet has {held} images but {n} labels")
        if self.index_in_class is not None:
            self.index_in_class = np.asarray(self.index_in_class, dtype=np.int64)
            if len(self.index_in_class) != n:
                raise DataError(f"ImageSet index_in_class has {len(self.index_in_class)} "
                                f"entries for {n} images")
        if n and (self.labels.min() < 0 or self.labels.max() >= len(self.classes)):
            raise DataError(f"ImageSet labels must lie in 0..{len(self.classes) - 1} "
                            f"({len(self.classes)} classes)")

    def __len__(self) -> int:
        return len(self.labels)

    def image(self, i: int) -> Image.Image:
        """Image `i` as a PIL image: mode "L" when channels == 1, else "RGB"."""
        from PIL import Image

        mode = "L" if self.channels == 1 else "RGB"
        if self.arrays is not None:
            return Image.fromarray(self.arrays[i])
        assert self.paths is not None
        img = read_image(self.paths[i])
        return img if img.mode == mode else img.convert(mode)

    def subset(self, indices: Sequence[int] | np.ndarray) -> ImageSet:
        """The images at `indices`, in that order (same classes, channels and skipped).

        >>> s = ImageSet(labels=np.array([0, 1, 1]), classes=["a", "b"],
        ...              arrays=np.zeros((3, 2, 2), np.uint8))
        >>> s.subset([2, 0]).labels.tolist()
        [1, 0]
        """
        idx = np.asarray(indices, dtype=np.int64)
        return ImageSet(
            labels=self.labels[idx], classes=list(self.classes),
            arrays=None if self.arrays is None else self.arrays[idx],
            paths=None if self.paths is None else [self.paths[i] for i in idx],
            channels=self.channels, skipped=list(self.skipped),
            index_in_class=None if self.index_in_class is None else self.index_in_class[idx])


# ---------------------------------------------------------------- decoding one image


class _Unreadable(Exception):
    """A file that is not a readable image; the message is the reason."""


def read_image(path: str | os.PathLike[str]) -> Image.Image:
    """Decode an image file fully into mode "L" or "RGB" (conversions: module docstring).

    Raises DataError naming the path for a missing, unreadable or truncated file.

    >>> read_image("photos/cat/1.jpg").mode  # doctest: +SKIP
    'RGB'
    """
    try:
        return _decode(Path(path))
    except _Unreadable as e:
        raise DataError(f"cannot read image {path}: {e}") from None


def _decode(path: Path) -> Image.Image:
    from PIL import Image, ImageOps

    try:
        with Image.open(path) as im:
            # load() decodes every byte: it catches the truncated files that verify() misses
            im.load()
            try:
                upright = ImageOps.exif_transpose(im)
            except Exception:  # a damaged EXIF block must not cost a readable image
                upright = im
            if upright is None:
                upright = im
            return _standard_mode(upright)
    except _Unreadable:
        raise
    except FileNotFoundError:
        raise _Unreadable("no such file") from None
    except Exception as e:  # Pillow's plugins raise many types for malformed files
        raise _Unreadable(f"{type(e).__name__}: {e}") from None


def _standard_mode(im: Image.Image) -> Image.Image:
    from PIL import Image

    mode = im.mode
    if mode == "L":
        return im.copy()  # detached from the file, which the caller closes
    if mode == "1":
        return im.convert("L")
    if mode in ("P", "PA", "RGBA", "RGBa", "LA", "La"):
        im = im.convert("LA" if mode in ("LA", "La") else "RGBA")
        base = Image.new(im.mode[:-1], im.size, 255 if im.mode == "LA" else (255, 255, 255))
        base.paste(im.convert(im.mode[:-1]), mask=im.getchannel("A"))
        return base
    if mode.startswith("I;16"):
        arr = np.asarray(im).astype(np.uint16)
        return Image.fromarray((arr >> 8).astype(np.uint8))
    if mode == "I":
        arr = np.clip(np.asarray(im), 0, 65535).astype(np.uint16)
        return Image.fromarray((arr >> 8).astype(np.uint8))
    if mode == "F":
        arr = np.nan_to_num(np.asarray(im, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        if arr.size and arr.max() <= 1.0:
            arr = arr * 255.0
        return Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8))
    if mode == "RGB":
        return im.copy()
    try:
        return im.convert("RGB")
    except ValueError as e:
        raise _Unreadable(f"unsupported image mode {mode!r} ({e})") from None


# ---------------------------------------------------------------- IDX (MNIST format)

_IDX_TYPES = {0x08: np.dtype("u1"), 0x09: np.dtype("i1"), 0x0B: np.dtype(">i2"),
              0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
IDX_IMAGES = 2051  # magic of an IDX file of uint8 images [n, rows, cols]
IDX_LABELS = 2049  # magic of an IDX file of uint8 labels [n]


def read_idx(path: str | os.PathLike[str], *, magic: int | None = None) -> np.ndarray:
    """Read an IDX file (big-endian header: 0, 0, type, ndim, then ndim uint32 sizes).

    `magic` (e.g. 2051 images, 2049 labels) is checked when given. DataError for a file
    that is not IDX, has another magic, or is truncated or longer than its header says.

    >>> read_idx("train-labels-idx1-ubyte", magic=2049).shape  # doctest: +SKIP
    (60000,)
    """
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
            if len(head) < 4:
                raise DataError(f"{path}: not an IDX file (only {len(head)} bytes)")
            found = int.from_bytes(head, "big")
            if head[0] or head[1] or head[2] not in _IDX_TYPES or head[3] == 0:
                raise DataError(f"{path}: not an IDX file (magic {found:#010x})")
            if magic is not None and found != magic:
                raise DataError(f"{path}: IDX magic {found}, expected {magic}")
            dims_raw = fh.read(4 * head[3])
            if len(dims_raw) < 4 * head[3]:
                raise DataError(f"{path}: IDX header truncated")
            size = os.fstat(fh.fileno()).st_size
    except OSError as e:
        raise DataError(f"cannot read {path}: {e}") from None
    dims = tuple(int.from_bytes(dims_raw[i:i + 4], "big") for i in range(0, len(dims_raw), 4))
    dtype = _IDX_TYPES[head[2]]
    offset = 4 + len(dims_raw)
    count = int(np.prod(dims, dtype=object))
    expected = offset + count * dtype.itemsize
    if size != expected:
        what = "truncated" if size < expected else "longer than its header says"
        raise DataError(f"{path}: IDX file {what}: {size} bytes, header {dims} needs {expected}")
    arr = np.fromfile(path, dtype=dtype, count=count, offset=offset).reshape(dims)
    return arr.astype(dtype.newbyteorder("="), copy=False)


def _idx_set(images: Path, labels: Path, classes: list[str], expect: int,
             what: str) -> ImageSet:
    x = read_idx(images, magic=IDX_IMAGES)
    y = read_idx(labels, magic=IDX_LABELS)
    if len(x) != len(y):
        raise DataError(f"{what}: {len(x)} images ({images}) but {len(y)} labels ({labels})")
    if len(x) != expect:
        raise DataError(f"{what}: expected {expect} images, read {len(x)}")
    if len(y) and int(y.max()) >= len(classes):
        raise DataError(f"{what}: label {int(y.max())} out of range 0..{len(classes) - 1}")
    return ImageSet(labels=y.astype(np.int64), classes=list(classes), arrays=x, channels=1)


# ---------------------------------------------------------------- MNIST and Fashion-MNIST

_MNIST_URLS = ("https://ossci-datasets.s3.amazonaws.com/mnist/",
               "http://yann.lecun.com/exdb/mnist/")
MNIST_GROUP = "MNIST"


def _mnist(name: str, sha256: str, size: int) -> hub.RemoteFile:
    # pinned by the decompressed file: the mirror's train-images .gz is a recompression
    return hub.RemoteFile(name, sha256, size, tuple(u + name for u in _MNIST_URLS), gunzip=True)


# "<split>-images" / "<split>-labels" -> pinned file (hub.describe(MNIST_FILES) for a card)
MNIST_FILES = {
    "train-images": _mnist("train-images-idx3-ubyte.gz",
                           "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
                           47_040_016),
    "train-labels": _mnist("train-labels-idx1-ubyte.gz",
                           "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
                           60_008),
    "test-images": _mnist("t10k-images-idx3-ubyte.gz",
                          "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
                          7_840_016),
    "test-labels": _mnist("t10k-labels-idx1-ubyte.gz",
                          "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
                          10_008),
}
COUNTS = {"train": 60_000, "test": 10_000}

FASHION_MNIST_GROUP = "fashion-mnist"
FASHION_MNIST_DEBIAN = Path("/usr/share/datasets/fashion-mnist")  # apt: dataset-fashion-mnist
_FASHION_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
FASHION_MNIST_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
                         "Shirt", "Sneaker", "Bag", "Ankle boot"]


def _fashion(name: str, sha256: str, size: int) -> hub.RemoteFile:
    # Debian's .gz bytes differ from upstream's (no name/mtime in the header): the pin is of
    # the decompressed file, so both sources verify
    return hub.RemoteFile(name, sha256, size,
                          ((FASHION_MNIST_DEBIAN / name).as_uri(), _FASHION_URL + name),
                          gunzip=True)


FASHION_MNIST_FILES = {
    "train-images": _fashion("train-images-idx3-ubyte.gz",
                             "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
                             47_040_016),
    "train-labels": _fashion("train-labels-idx1-ubyte.gz",
                             "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
                             60_008),
    "test-images": _fashion("t10k-images-idx3-ubyte.gz",
                            "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
                            7_840_016),
    "test-labels": _fashion("t10k-labels-idx1-ubyte.gz",
                            "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
                            10_008),
}


def _split(split: str) -> str:
    if split not in COUNTS:
        raise UsageError(f"split must be 'train' or 'test', got {split!r}")
    return split


def load_mnist(split: str) -> ImageSet:
    """MNIST digits: "train" (60,000) or "test" (10,000), uint8 [N, 28, 28], classes "0".."9".

    >>> load_mnist("test").arrays.shape  # doctest: +SKIP
    (10000, 28, 28)
    """
    images, labels = (MNIST_FILES[f"{_split(split)}-{k}"] for k in ("images", "labels"))
    return _idx_set(hub.fetch(images, group=MNIST_GROUP), hub.fetch(labels, group=MNIST_GROUP),
                    [str(d) for d in range(10)], COUNTS[split], f"MNIST {split}")


def load_fashion_mnist(split: str) -> ImageSet:
    """Fashion-MNIST: "train" (60,000) or "test" (10,000), uint8 [N, 28, 28], 10 classes
    (FASHION_MNIST_CLASSES). Sources after the mirrors: the Debian package's folder, then
    the upstream URL.

    >>> load_fashion_mnist("train").classes[0]  # doctest: +SKIP
    'T-shirt/top'
    """
    images, labels = (FASHION_MNIST_FILES[f"{_split(split)}-{k}"] for k in ("images", "labels"))
    grp = FASHION_MNIST_GROUP
    return _idx_set(hub.fetch(images, group=grp), hub.fetch(labels, group=grp),
                    FASHION_MNIST_CLASSES, COUNTS[split], f"Fashion-MNIST {split}")


# ---------------------------------------------------------------- ORL faces

ORL_GROUP = "att_faces"
ORL_URL = "https://www.cl.cam.ac.uk/research/dtg/attarchive/pub/data/att_faces.zip"
ORL_SIZE = (92, 112)  # PIL (width, height)


@functools.lru_cache(maxsize=1)
def orl_folder() -> hub.RemoteFolder:
    """The ORL faces as a pinned folder: the packaged manifest of its 401 files, and the
    canonical zip as an unpinned archive (its files are verified by the manifest)."""
    text = (importlib.resources.files("taskzoo.data") / "manifests" / "att_faces.txt"
            ).read_text(encoding="utf-8")
    manifest = hub.parse_manifest(text, source="taskzoo/data/manifests/att_faces.txt")
    # root=None: the folder that holds the manifest's files, wherever the zip puts it (its
    # top level, or an att_faces/ folder, as copies of it differ)
    return hub.RemoteFolder("att_faces", manifest,
                            (hub.RemoteArchive("att_faces.zip", urls=(ORL_URL,), root=None),))


def load_orl() -> ImageSet:
    """The AT&T/ORL faces: 400 grey 112x92 images of 40 people (10 each), uint8 [400, 112, 92].

    Classes "s1".."s40" in numeric order, label = subject number - 1; `index_in_class` is
    the image number 1..10 (the usual protocol trains on 1..5 and tests on 6..10).

    >>> faces = load_orl()  # doctest: +SKIP
    >>> train = faces.subset(np.flatnonzero(faces.index_in_class <= 5))  # doctest: +SKIP
    """
    root = hub.fetch_folder(orl_folder(), group=ORL_GROUP)
    found = []
    for rel, _, _ in orl_folder().manifest:
        if m := re.fullmatch(r"s(\d+)/(\d+)\.pgm", rel):
            found.append((int(m.group(1)), int(m.group(2)), rel))
    found.sort()
    subjects = sorted({s for s, _, _ in found})
    arrays = np.empty((len(found), ORL_SIZE[1], ORL_SIZE[0]), dtype=np.uint8)
    for i, (_, _, rel) in enumerate(found):
        img = read_image(root / rel)
        if img.size != ORL_SIZE or img.mode != "L":
            raise DataError(f"{root / rel}: expected a {ORL_SIZE[0]}x{ORL_SIZE[1]} grey image, "
                            f"got {img.size[0]}x{img.size[1]} {img.mode}")
        arrays[i] = np.asarray(img)
    index = {s: k for k, s in enumerate(subjects)}
    return ImageSet(labels=np.array([index[s] for s, _, _ in found], dtype=np.int64),
                    classes=[f"s{s}" for s in subjects], arrays=arrays, channels=1,
                    index_in_class=np.array([k for _, k, _ in found], dtype=np.int64))


# ---------------------------------------------------------------- scikit-learn digits


LICENSES = {"mnist": "CC BY-SA 3.0 (LeCun, Cortes, Burges)",
            "fashion_mnist": "MIT (Zalando SE)",
            "orl": "no formal license; credit Olivetti Research Laboratory",
            "digits": "CC BY 4.0 (UCI optdigits, via scikit-learn)",
            "flickr8k": "research use only (Hodosh et al. 2013; Flickr photos)"}
"""What a weights card says about the license of each dataset's images."""


def example_images(n: int) -> list[np.ndarray]:
    """`n` offline example inputs for an image predictor: the digits, cycled."""
    digits = load_digits()
    return [digits.arrays[i % len(digits)] for i in range(n)]


def load_digits() -> ImageSet:
    """scikit-learn's bundled 8x8 digits (1,797 images; 0..16 scaled to 0..255), offline.

    >>> load_digits().arrays.shape
    (1797, 8, 8)
    """
    from sklearn.datasets import load_digits as sk_digits

    bunch = sk_digits()
    arrays = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)
    return ImageSet(labels=bunch.target.astype(np.int64), classes=[str(d) for d in range(10)],
                    arrays=arrays, channels=1)


# ---------------------------------------------------------------- a user's image folder


def _natural(name: str) -> tuple[list[object], str]:
    # "class2" before "class10"; ties broken by the plain name
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)], name


def _visible(name: str) -> bool:
    return not name.startswith(".")


def _files_under(folder: Path) -> list[Path]:
    """Image files (by extension) under `folder`, recursively, hidden ones left out."""
    out = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted((d for d in dirnames if _visible(d)), key=_natural)
        out += [Path(dirpath) / f for f in sorted(filenames, key=_natural)
                if _visible(f) and Path(f).suffix.lower() in IMAGE_EXTENSIONS]
    return out


def _decode_modes(files: list[Path]) -> tuple[list[str | None], dict[Path, str]]:
    """Decode every file once: its mode ("L"/"RGB"), or None with the reason in the dict."""

    def check(path: Path) -> str | None:
        try:
            return _decode(path).mode
        except _Unreadable as e:
            reasons[path] = str(e)
            return None

    reasons: dict[Path, str] = {}
    # Pillow decodes without the GIL: a few threads go through a large folder faster
    workers = min(8, os.cpu_count() or 1) if len(files) > 64 else 1
    with ThreadPoolExecutor(workers) as pool:
        modes = list(pool.map(check, files))
    return modes, reasons


@dataclass
class _Scan:
    by_class: dict[str, list[Path]]  # class -> readable files, in order
    grey: dict[Path, bool]
    skipped: list[tuple[str, str]]


def _scan(folder: Path) -> _Scan:
    """Decode every image of `folder/<class>/...` once; unreadable files are skipped."""
    classes = sorted((d.name for d in folder.iterdir() if d.is_dir() and _visible(d.name)),
                     key=_natural)
    skipped = [(str(p), "not inside a class folder") for p in sorted(folder.iterdir())
               if p.is_file() and _visible(p.name) and p.suffix.lower() in IMAGE_EXTENSIONS]
    files = [(c, p) for c in classes for p in _files_under(folder / c)]
    modes, reasons = _decode_modes([p for _, p in files])
    by_class: dict[str, list[Path]] = {}
    grey: dict[Path, bool] = {}
    for (c, p), mode in zip(files, modes, strict=True):
        if mode is None:
            skipped.append((str(p), reasons[p]))
            continue
        by_class.setdefault(c, []).append(p)
        grey[p] = mode == "L"
    return _Scan(by_class, grey, skipped)


def _image_set(items: list[tuple[Path, int]], classes: list[str], channels: int,
               skipped: list[tuple[str, str]]) -> ImageSet:
    return ImageSet(labels=np.array([y for _, y in items], dtype=np.int64), classes=classes,
                    paths=[p for p, _ in items], channels=channels, skipped=skipped)


def _stratified(items: list[tuple[Path, int]], classes: list[str], val_fraction: float,
                seed: int, where: Path) -> tuple[list[tuple[Path, int]], list[tuple[Path, int]]]:
    from sklearn.model_selection import train_test_split

    counts = Counter(y for _, y in items)
    if few := sorted(classes[y] for y, n in counts.items() if n < 2):
        raise DataError(f"{where}: class {few[0]!r} has only one image: a stratified "
                        f"train/val split needs at least 2 per class. Add images, or give "
                        f"the split yourself as {where}/train/<class>/ and {where}/val/<class>/")
    try:
        train_idx, val_idx = train_test_split(
            np.arange(len(items)), test_size=val_fraction, random_state=seed,
            stratify=[y for _, y in items])
    except ValueError as e:  # e.g. fewer val images than classes
        raise DataError(f"{where}: cannot split {len(items)} images of {len(classes)} classes "
                        f"with val_fraction={val_fraction}: {e}") from None
    # keep the folder order inside each split: the split, not the order, is what is random
    return [items[i] for i in sorted(train_idx)], [items[i] for i in sorted(val_idx)]


def load_image_folder(root: str | os.PathLike[str], *, seed: int = 0,
                      val_fraction: float = 0.2) -> dict[str, ImageSet]:
    """A class-per-folder tree of images: `root/train/<class>/*`, `root/val/<class>/*` (and
    `root/test/<class>/*`) when `root/train` exists, else `root/<class>/*` split into
    "train" and "val" by a seeded stratified split (`val_fraction` of each class to val;
    0: no val). `root/train` without `root/val` is split the same way.

    Class names are the folder names in natural order ("c2" before "c10"); files are found
    recursively by extension (IMAGE_EXTENSIONS), hidden files and folders are ignored. Every
    file is decoded once here: unreadable or truncated ones are left out and listed, with
    the reason, in the "train" set's `skipped` (those of a given val/test folder in that
    split's). Splits hold `paths`, decoded on demand by `read_image`.

    >>> splits = load_image_folder("flowers", seed=1)  # doctest: +SKIP
    >>> sorted(splits), splits["train"].classes[:2], splits["train"].channels  # doctest: +SKIP
    (['train', 'val'], ['daisy', 'rose'], 3)
    """
    root = Path(root)
    if not 0.0 <= val_fraction < 1.0:
        raise UsageError(f"val_fraction must be in [0, 1), got {val_fraction}")
    if not root.exists():
        raise DataError(f"image folder {root} does not exist")
    if not root.is_dir():
        raise DataError(f"{root} is not a folder (expected {root}/<class>/<image files>)")
    presplit = (root / "train").is_dir()
    names = ("train", "val", "test") if presplit else ("",)
    scans = {name or "train": _scan(root / name) for name in names if (root / name).is_dir()}
    train = scans["train"]
    classes = sorted(train.by_class, key=_natural)
    skipped_all = [s for scan in scans.values() for s in scan.skipped]
    if not classes:
        extra = (f"; {len(skipped_all)} files could not be read, e.g. {skipped_all[0][0]}: "
                 f"{skipped_all[0][1]}" if skipped_all else "")
        where = root / "train" if presplit else root
        raise DataError(f"no images found in {where}: expected {where}/<class>/<image>, one "
                        f"folder per class (extensions: {', '.join(sorted(IMAGE_EXTENSIONS))})"
                        f"{extra}")
    if len(classes) < 2:
        raise DataError(f"{root}: only one class ({classes[0]!r}, "
                        f"{len(train.by_class[classes[0]])} images): a classifier needs at "
                        f"least two class folders")
    for name, scan in scans.items():
        if unknown := sorted(set(scan.by_class) - set(classes), key=_natural):
            raise DataError(f"{root / name}: classes {unknown} have no images in "
                            f"{root / 'train'}: every {name} class must be a train class")
    grey = all(g for scan in scans.values() for g in scan.grey.values())
    channels = 1 if grey else 3
    label = {c: i for i, c in enumerate(classes)}

    def items(scan: _Scan) -> list[tuple[Path, int]]:
        return [(p, label[c]) for c in sorted(scan.by_class, key=_natural)
                for p in scan.by_class[c]]

    out: dict[str, ImageSet] = {}
    train_items = items(train)
    if "val" not in scans and val_fraction > 0:
        train_items, val_items = _stratified(train_items, classes, val_fraction, seed,
                                             root / "train" if presplit else root)
        out["train"] = _image_set(train_items, classes, channels, train.skipped)
        out["val"] = _image_set(val_items, classes, channels, [])
    else:
        out["train"] = _image_set(train_items, classes, channels, train.skipped)
    for name in ("val", "test"):
        if name in scans:
            out[name] = _image_set(items(scans[name]), classes, channels, scans[name].skipped)
    return out


def load_image_files(root: str | os.PathLike[str], *, recursive: bool = True) -> ImageSet:
    """Every image file under a folder, without classes (for autoencoders and colorization:
    `data=PATH`): labels all 0, classes ["image"], `paths` read on demand.

    Files are found by extension (IMAGE_EXTENSIONS), in subfolders too unless
    `recursive=False`, hidden files and folders ignored, in natural order ("2.png" before
    "10.png"; a folder's own files before its subfolders'). Every file is decoded once here:
    unreadable or truncated ones are left out and listed, with the reason, in `skipped`.
    `channels` is 1 when every image is grey, else 3.

    >>> photos = load_image_files("my_photos")  # doctest: +SKIP
    >>> len(photos), photos.channels, photos.skipped[:1]  # doctest: +SKIP
    (120, 3, [('my_photos/broken.jpg', 'UnidentifiedImageError: cannot identify ...')])
    """
    root = Path(root)
    if not root.exists():
        raise DataError(f"image folder {root} does not exist")
    if not root.is_dir():
        raise DataError(f"{root} is not a folder (expected a folder of image files)")
    if recursive:
        files = _files_under(root)
    else:
        files = [p for p in sorted(root.iterdir(), key=lambda p: _natural(p.name))
                 if p.is_file() and _visible(p.name) and p.suffix.lower() in IMAGE_EXTENSIONS]
    modes, reasons = _decode_modes(files)
    kept = [(p, m) for p, m in zip(files, modes, strict=True) if m is not None]
    skipped = [(str(p), reasons[p]) for p, m in zip(files, modes, strict=True) if m is None]
    if not kept:
        extra = (f"; {len(skipped)} files could not be read, e.g. {skipped[0][0]}: "
                 f"{skipped[0][1]}" if skipped else "")
        sub = "" if recursive else " (subfolders not searched: recursive=False)"
        raise DataError(f"no images found in {root}{sub}: expected image files with the "
                        f"extensions {', '.join(sorted(IMAGE_EXTENSIONS))}{extra}")
    channels = 1 if all(m == "L" for _, m in kept) else 3
    return ImageSet(labels=np.zeros(len(kept), dtype=np.int64), classes=["image"],
                    paths=[p for p, _ in kept], channels=channels, skipped=skipped)
