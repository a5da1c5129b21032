"""Object-detection datasets behind one return type, `DetectionSet`: the Penn-Fudan
pedestrians (`load_pennfudan`, split by `pennfudan_split`), coco128 (`load_coco128`) and a
user's own data (`load_detection_data`: an Ultralytics YOLO dataset, a COCO json, or a plain
images/ + labels/ folder; the readers live in `taskzoo.data.detection.files`).

    >>> from taskzoo.data.detection.datasets import load_pennfudan, pennfudan_split
    >>> peds = load_pennfudan()                                 # doctest: +SKIP
    >>> len(peds), peds.num_boxes, peds.classes                 # doctest: +SKIP
    (170, 423, ['person'])
    >>> split = pennfudan_split([p.name for p in peds.paths])   # doctest: +SKIP
    >>> train, test = peds.subset(split["train"]), peds.subset(split["test"])  # doctest: +SKIP

Conventions, the engine's everywhere: boxes are float32 [N, 4] `x1, y1, x2, y2` in pixels of
the image as `read_image` returns it (EXIF orientation applied), with continuous edges (a
box over pixel columns 0..9 has x1 = 0, x2 = 10), so 0 <= x1 < x2 <= W, 0 <= y1 < y2 <= H;
labels are int64 class ids 0..K-1 indexing `classes`.

The real datasets come through the verified hub (`taskzoo.hub`) as folders pinned by
packaged manifests (`taskzoo/data/manifests/pennfudan.txt`, `coco128.txt`).
"""

from __future__ import annotations

import functools
import importlib.resources
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from taskzoo import hub
from taskzoo.data.detection.files import read_class_names, read_yolo_split
from taskzoo.data.detection.labels import LabelProblems
from taskzoo.data.image_files import read_image
from taskzoo.errors import DataError, DownloadError, UsageError

if TYPE_CHECKING:
    from PIL import Image

__all__ = ["DetectionSet", "pennfudan_folder", "load_pennfudan", "pennfudan_split",
           "read_pennfudan_annotation", "coco128_folder", "coco128_root", "load_coco128",
           "DETECTION_LICENSES", "PENNFUDAN_GROUP", "PENNFUDAN_URL", "COCO128_GROUP"]


@dataclass
class DetectionSet:
    """Images (files, read on demand) with their boxes and class labels.

    >>> s = DetectionSet(paths=[Path("a.png"), Path("b.png")],
    ...                  boxes=[np.array([[1, 2, 5, 6]]), np.zeros((0, 4))],
    ...                  labels=[np.array([0]), np.array([], int)], classes=["cat"],
    ...                  sizes=[(8, 8), (4, 3)])
    >>> len(s), s.num_boxes, s.boxes[0].dtype, s.labels[1].dtype
    (2, 1, dtype('float32'), dtype('int64'))
    >>> s.subset([1]).paths
    [PosixPath('b.png')]
    """

    paths: list[Path]
    boxes: list[np.ndarray]  # per image float32 [N_i, 4]: x1, y1, x2, y2 in pixels
    labels: list[np.ndarray]  # per image int64 [N_i]: index into classes
    classes: list[str]
    sizes: list[tuple[int, int]]  # (W, H) of each image, as read_image returns it
    name: str = ""
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason) left out

    def __post_init__(self) -> None:
        n = len(self.paths)
        if not len(self.boxes) == len(self.labels) == len(self.sizes) == n:
            raise DataError(f"DetectionSet {self.name!r}: {n} paths, {len(self.boxes)} box "
                            f"arrays, {len(self.labels)} label arrays and {len(self.sizes)} "
                            f"sizes: one of each per image")
        if not self.classes:
            raise DataError(f"DetectionSet {self.name!r} has no classes")
        self.paths = [Path(p) for p in self.paths]
        self.sizes = [(int(w), int(h)) for w, h in self.sizes]
        # converted (not refused) when numeric: callers build boxes from lists and float64
        self.boxes = [self._boxes(i, b) for i, b in enumerate(self.boxes)]
        self.labels = [self._labels(i, y) for i, y in enumerate(self.labels)]

    def _where(self, i: int) -> str:
        return f"DetectionSet {self.name!r}, image {i} ({self.paths[i]})"

    def _boxes(self, i: int, b: np.ndarray) -> np.ndarray:
        b = np.asarray(b, dtype=np.float32)
        if b.size == 0:
            b = b.reshape(0, 4)
        if b.ndim != 2 or b.shape[1] != 4:
            raise DataError(f"{self._where(i)}: boxes must be [N, 4], got shape {b.shape}")
        w, h = self.sizes[i]
        eps = 1e-3  # float32 rounding of coordinates that lie on the image's edge
        if w <= 0 or h <= 0:
            raise DataError(f"{self._where(i)}: size {w}x{h}")
        bad = ~np.isfinite(b).all(1) | (b[:, 0] >= b[:, 2]) | (b[:, 1] >= b[:, 3]) | (
            b[:, :2] < -eps).any(1) | (b[:, 2] > w + eps) | (b[:, 3] > h + eps)
        if bad.any():
            raise DataError(f"{self._where(i)}: box {b[bad][0].tolist()} is not "
                            f"x1 < x2, y1 < y2 inside the {w}x{h} image")
        return b

    def _labels(self, i: int, y: np.ndarray) -> np.ndarray:
        y = np.asarray(y)
        if y.size == 0:
            y = y.astype(np.int64).reshape(0)
        if not np.issubdtype(y.dtype, np.integer) or y.shape != (len(self.boxes[i]),):
            raise DataError(f"{self._where(i)}: labels must be integers [{len(self.boxes[i])}]"
                            f" (one per box), got {y.dtype} {y.shape}")
        if y.size and (y.min() < 0 or y.max() >= len(self.classes)):
            raise DataError(f"{self._where(i)}: label {int(y.max())} out of range "
                            f"0..{len(self.classes) - 1} ({len(self.classes)} classes)")
        return y.astype(np.int64)

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def num_boxes(self) -> int:
        """Boxes over all images."""
        return sum(len(b) for b in self.boxes)

    def image(self, i: int) -> Image.Image:
        """Image `i` as an RGB PIL image (grey files are converted)."""
        img = read_image(self.paths[i])
        return img if img.mode == "RGB" else img.convert("RGB")

    def subset(self, indices: Sequence[int] | np.ndarray) -> DetectionSet:
        """The images at `indices` (or where a boolean mask is True), in that order (same
        classes, name and skipped)."""
        idx = np.asarray(indices)
        idx = [int(i) for i in (np.flatnonzero(idx) if idx.dtype == bool else idx)]
        return DetectionSet(paths=[self.paths[i] for i in idx],
                            boxes=[self.boxes[i] for i in idx],
                            labels=[self.labels[i] for i in idx], classes=list(self.classes),
                            sizes=[self.sizes[i] for i in idx], name=self.name,
                            skipped=list(self.skipped))


DETECTION_LICENSES = {
    "pennfudan": "no open license; copyright retained by the authors (Wang, Shi, Song, Shen, "
                 "ACCV 2007), not to be reposted without their permission",
    "coco128": "COCO annotations CC BY 4.0; each image keeps its Flickr license (mostly "
               "CC BY-NC-SA / BY-NC-ND / BY-NC) and the COCO terms of use apply",
}
"""What a weights card says about the license of each detection dataset's images."""


def _manifest(name: str) -> hub.Manifest:
    text = (importlib.resources.files("taskzoo.data") / "manifests" / name
            ).read_text(encoding="utf-8")
    return hub.parse_manifest(text, source=f"taskzoo/data/manifests/{name}")


# ---------------------------------------------------------------- Penn-Fudan pedestrians

PENNFUDAN_GROUP = "PennFudanPed"
PENNFUDAN_URL = "https://www.cis.upenn.edu/~jshi/ped_html/PennFudanPed.zip"
PENNFUDAN_COUNTS = (170, 423)  # images, boxes (345 in the paper + 78 added later)
PENNFUDAN_TEST = 50  # held-out images: as many as the torchvision tutorial (unseeded there)

_PF_SIZE = re.compile(r"Image size \(X x Y x C\) : (\d+) x (\d+) x \d+")
_PF_COUNT = re.compile(r"Objects with ground truth : (\d+)")
_PF_BOX = re.compile(r"Bounding box for object (\d+) \"[^\"]*\" \(Xmin, Ymin\) - \(Xmax, Ymax\)"
                     r" : \((\d+), (\d+)\) - \((\d+), (\d+)\)")


@functools.lru_cache(maxsize=1)
def pennfudan_folder() -> hub.RemoteFolder:
    """Penn-Fudan as a pinned folder: the packaged manifest of its 512 files (images, masks,
    annotations) and the canonical zip as an unpinned archive (verified by the manifest)."""
    # root=None: the folder holding the manifest's files, wherever the zip puts it (the
    # upstream zip has them under PennFudanPed/)
    return hub.RemoteFolder(PENNFUDAN_GROUP, _manifest("pennfudan.txt"), (
        hub.RemoteArchive("PennFudanPed.zip", urls=(PENNFUDAN_URL,), root=None),))


def read_pennfudan_annotation(path: Path) -> tuple[tuple[int, int], np.ndarray]:
    """The image size (W, H) and boxes (float32 xyxy) of one PASCAL-v1 annotation file.

    The file's `(Xmin, Ymin) - (Xmax, Ymax)` are 1-based inclusive pixel indices; the
    continuous 0-based edges are x1 = Xmin - 1, y1 = Ymin - 1, x2 = Xmax, y2 = Ymax.

    >>> read_pennfudan_annotation(root / "Annotation/FudanPed00001.txt")  # doctest: +SKIP
    ((559, 536), array([[159., 181., 302., 431.], [419., 170., 535., 486.]], dtype=float32))
    """
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"cannot read the annotation {path}: {e}") from None
    size, count, boxes = None, None, []
    for lineno, line in enumerate(lines, start=1):
        if m := _PF_SIZE.match(line):
            size = (int(m.group(1)), int(m.group(2)))
        elif m := _PF_COUNT.match(line):
            count = int(m.group(1))
        elif m := _PF_BOX.match(line):
            xmin, ymin, xmax, ymax = (int(g) for g in m.groups()[1:])
            boxes.append((lineno, [xmin - 1, ymin - 1, xmax, ymax]))
        elif line.startswith("Bounding box"):
            raise DataError(f"{path}:{lineno}: unreadable box line {line[:120]!r}")
    if size is None or count != len(boxes):
        raise DataError(f"{path}: expected an 'Image size' line and as many 'Bounding box' lines"
                        f" as 'Objects with ground truth' says ({count}), found {len(boxes)}")
    for lineno, (x1, y1, x2, y2) in boxes:
        if not (0 <= x1 < x2 <= size[0] and 0 <= y1 < y2 <= size[1]):
            raise DataError(f"{path}:{lineno}: box outside the {size[0]}x{size[1]} image")
    return size, np.array([b for _, b in boxes], np.float32).reshape(-1, 4)


def load_pennfudan() -> DetectionSet:
    """The Penn-Fudan pedestrians: 170 RGB photos (PNG, sorted by file name: 74 FudanPed*,
    then 96 PennPed*) with 423 boxes of one class, "person". Boxes from the annotation files
    (both object labels, PASpersonWalking and PASpersonStanding, are "person"); the instance
    masks are in the folder (PedMasks/) but not read. No official split: see
    `pennfudan_split`. Sources: TASKZOO_MIRROR/PennFudanPed/, then PENNFUDAN_URL.

    >>> peds = load_pennfudan()  # doctest: +SKIP
    >>> peds.sizes[0], peds.boxes[0].tolist()[0]  # doctest: +SKIP
    ((559, 536), [159.0, 181.0, 302.0, 431.0])
    """
    from PIL import Image

    root = hub.fetch_folder(pennfudan_folder(), group=PENNFUDAN_GROUP)
    names = sorted(rel for rel, _, _ in pennfudan_folder().manifest
                   if rel.startswith("PNGImages/") and rel.endswith(".png"))
    paths, boxes, sizes = [], [], []
    for rel in names:
        path = root / rel
        size, b = read_pennfudan_annotation(root / "Annotation" / f"{path.stem}.txt")
        with Image.open(path) as im:  # the header only: the bytes are verified already
            if im.size != size:
                raise DataError(f"{path}: the image is {im.size[0]}x{im.size[1]}, its "
                                f"annotation says {size[0]}x{size[1]}")
        paths.append(path)
        boxes.append(b)
        sizes.append(size)
    out = DetectionSet(paths=paths, boxes=boxes, labels=[np.zeros(len(b), np.int64)
                                                         for b in boxes],
                       classes=["person"], sizes=sizes, name="pennfudan")
    if (len(out), out.num_boxes) != PENNFUDAN_COUNTS:
        raise DataError(f"Penn-Fudan in {root}: expected {PENNFUDAN_COUNTS[0]} images and "
                        f"{PENNFUDAN_COUNTS[1]} boxes, read {len(out)} and {out.num_boxes}")
    return out


def pennfudan_split(names: list[str], *, dev: int = 20, seed: int = 0) -> dict[str, list[int]]:
    """The fixed Penn-Fudan protocol: indices into `sorted(names)` for "train", "dev" and
    "test", each sorted. The sorted names are shuffled by `random.Random(0)`: the last 50
    are test, the first 120 train; `dev` of those 120, drawn by `random.Random(seed)`, are
    held out for model selection (never from test, which `seed` does not change).

    >>> names = [f"img{i:03d}.png" for i in range(170)]
    >>> s = pennfudan_split(names)
    >>> [len(s[k]) for k in ("train", "dev", "test")], pennfudan_split(names) == s
    ([100, 20, 50], True)
    """
    order = sorted(names)
    if len(order) != PENNFUDAN_COUNTS[0] or len(set(order)) != len(order):
        raise UsageError(f"pennfudan_split takes the {PENNFUDAN_COUNTS[0]} distinct Penn-Fudan "
                         f"image names, got {len(order)} ({len(set(order))} distinct)")
    pool_size = len(order) - PENNFUDAN_TEST
    if not 0 <= dev < pool_size:
        raise UsageError(f"dev must be in 0..{pool_size - 1} (taken from the {pool_size} "
                         f"training images), got {dev}")
    shuffled = list(order)
    random.Random(0).shuffle(shuffled)  # fixed: the test images never depend on `seed`
    test, pool = shuffled[pool_size:], shuffled[:pool_size]
    held = set(random.Random(seed).sample(pool, dev))
    index = {n: i for i, n in enumerate(order)}
    return {"train": sorted(index[n] for n in pool if n not in held),
            "dev": sorted(index[n] for n in held),
            "test": sorted(index[n] for n in test)}


# ---------------------------------------------------------------- coco128

COCO128_GROUP = "coco128"
COCO128_COUNTS = (128, 929, 80)  # images, boxes (non-crowd), classes
_COCO128_IMAGES = "images/train2017/"


@functools.lru_cache(maxsize=1)
def coco128_folder() -> hub.RemoteFolder:
    """coco128 as a pinned folder: the packaged manifest of its 256 files and no archive
    (no public URL serves these bytes: mirrors and the cache only)."""
    return hub.RemoteFolder(COCO128_GROUP, _manifest("coco128.txt"))


def coco128_root() -> Path:
    """The verified coco128 folder (copied from a mirror into the cache on first use).

    Raises the hub's DownloadError (OfflineError, IntegrityError) with where to put it.
    """
    try:
        return hub.fetch_folder(coco128_folder(), group=COCO128_GROUP)
    except DownloadError as e:
        raise type(e)(
            f"{e}\ncoco128 has no public URL for these files: the Ultralytics coco128.zip "
            f"holds re-encoded JPEGs that do not match the pins (use it as your own data "
            f"with taskzoo.data.detection.files.load_detection_data instead). Put the folder at "
            f"TASKZOO_MIRROR/{COCO128_GROUP}/, holding images/train2017/ (128 JPEGs from COCO "
            f"train2017), labels/train2017/, classes.txt and "
            f"annotations/instances_train2017.json, and set TASKZOO_MIRROR=<dir>.") from None


def load_coco128() -> DetectionSet:
    """coco128: the first 128 images of COCO train2017 (sorted by file name) with their 929
    YOLO boxes over 80 classes (names from classes.txt, COCO's order). Two images
    (000000000250.jpg, 000000000508.jpg) have no label file and so no boxes; one
    (000000000086.jpg) is greyscale, returned as RGB by `image`. By convention coco128's
    train and val are the same images: it checks that a pipeline runs and can overfit, it
    does not measure generalisation.

    Mirror or cache only: no public URL serves these bytes (the Ultralytics zip holds
    re-encoded JPEGs). The folder also holds the COCO json
    (`coco128_root() / "annotations/instances_train2017.json"`, readable with
    `taskzoo.data.detection.coco.load_coco_json`), whose non-crowd boxes equal the YOLO ones.

    >>> coco = load_coco128()  # doctest: +SKIP
    >>> len(coco), coco.num_boxes, coco.classes[:3]  # doctest: +SKIP
    (128, 929, ['person', 'bicycle', 'car'])
    """
    root = coco128_root()
    classes = read_class_names(root / "classes.txt")
    images = sorted(root / rel for rel, _, _ in coco128_folder().manifest
                    if rel.startswith(_COCO128_IMAGES) and rel.endswith(".jpg"))
    problems = LabelProblems()
    # decode=False: the pinned files are verified, their headers give the sizes
    out = read_yolo_split(images, classes, name="coco128", problems=problems, decode=False,
                          names_from=" in classes.txt")
    problems.check(f"coco128 in {root}")
    got = (len(out), out.num_boxes, len(out.classes))
    if got != COCO128_COUNTS or out.skipped:
        raise DataError(f"coco128 in {root}: expected {COCO128_COUNTS} (images, boxes, "
                        f"classes), read {got}; unreadable: {out.skipped[:3]}")
    return out
