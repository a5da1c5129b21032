"""Image datasets behind one return type, `ImageSet`: MNIST, Fashion-MNIST, the AT&T/ORL
faces, scikit-learn's 8x8 digits, a user's own class-per-folder images (`load_image_folder`)
and a user's plain folder of images without classes (`load_image_files`, for autoencoders).

    >>> from taskzoo.data.image_files import load_image_folder
    >>> from taskzoo.data.images import load_mnist
    >>> train = load_mnist("train")                      # doctest: +SKIP
    >>> train.arrays.shape, train.classes[:3]            # doctest: +SKIP
    ((60000, 28, 28), ['0', '1', '2'])
    >>> splits = load_image_folder("my_photos")          # doctest: +SKIP
    >>> splits["train"].paths[0], splits["val"].channels  # doctest: +SKIP

The real datasets come through the verified hub (`taskzoo.hub`): MNIST and Fashion-MNIST as
gzip files pinned by their decompressed content (mirrors and the Debian package recompress
them), the ORL faces as a folder pinned by a manifest (`taskzoo/data/manifests/`).

`read_image`, `load_image_folder`, `load_image_files` and IMAGE_EXTENSIONS live in
`taskzoo.data.image_files`, with the list of mode conversions `read_image` applies.

An ImageSet's `channels` is 1 when every image is grey ("L"), else 3, and then grey images
are converted to RGB when read (`ImageSet.image`).
"""

from __future__ import annotations

import functools
import importlib.resources
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from taskzoo import hub
from taskzoo.data.image_files import read_image
from taskzoo.errors import DataError, UsageError

if TYPE_CHECKING:
    from PIL import Image

__all__ = ["ImageSet", "read_idx", "idx_image_set", "load_mnist", "load_fashion_mnist",
           "load_orl", "load_digits", "LICENSES", "example_images", "MNIST_FILES",
           "FASHION_MNIST_FILES", "FASHION_MNIST_CLASSES", "orl_folder"]


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


def idx_image_set(images: Path, labels: Path, classes: list[str], expect: int,
                  what: str) -> ImageSet:
    """An ImageSet of an IDX images file and its IDX labels file (MNIST's format), checked
    to hold `expect` images with labels indexing `classes`; `what` names it in errors."""
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
    return idx_image_set(hub.fetch(images, group=MNIST_GROUP),
                         hub.fetch(labels, group=MNIST_GROUP), [str(d) for d in range(10)],
                         COUNTS[split], f"MNIST {split}")


def load_fashion_mnist(split: str) -> ImageSet:
    """Fashion-MNIST: "train" (60,000) or "test" (10,000), uint8 [N, 28, 28], 10 classes
    (FASHION_MNIST_CLASSES). Sources after the mirrors: the Debian package's folder, then
    the upstream URL.

    >>> load_fashion_mnist("train").classes[0]  # doctest: +SKIP
    'T-shirt/top'
    """
    images, labels = (FASHION_MNIST_FILES[f"{_split(split)}-{k}"] for k in ("images", "labels"))
    grp = FASHION_MNIST_GROUP
    return idx_image_set(hub.fetch(images, group=grp), hub.fetch(labels, group=grp),
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


def per_class_split(labels: np.ndarray, k: int, seed: int) -> tuple[list[int], list[int]]:
    """The ORL protocol: `k` seeded images of every class for training, the rest for test,
    each list sorted. The faces of image_classification and of the faces task are split
    alike, so their figures compare on the same faces.

    >>> per_class_split(np.array([0, 0, 0, 1, 1, 1]), 1, 0)
    ([2, 5], [0, 1, 3, 4])
    """
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        if len(idx) <= k:
            raise DataError(f"class {c} has {len(idx)} images: train_per_class={k} leaves no test")
        train += idx[:k].tolist()
        test += idx[k:].tolist()
    return sorted(train), sorted(test)


# ---------------------------------------------------------------- scikit-learn digits


LICENSES = {"mnist": "CC BY-SA 3.0 (LeCun, Cortes, Burges)",
            "fashion_mnist": "MIT (Zalando SE)",
            "orl": "no formal license; credit Olivetti Research Laboratory",
            "digits": "CC BY 4.0 (UCI optdigits, via scikit-learn)",
            "flickr8k": "research use only (Hodosh et al. 2013; Flickr photos)",
            "flowers": "CC BY 2.0 per photo (Flickr; attributions in its LICENSE.txt)",
            "flowers_full": "CC BY 2.0 per photo (Flickr; attributions in its LICENSE.txt)"}
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

