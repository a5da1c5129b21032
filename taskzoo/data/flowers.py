"""TensorFlow's flower photos (`flower_photos.tgz`: 3,670 Flickr JPEGs of 5 classes, CC BY 2.0
per photo): the 750-photo subset the mirror holds (`dataset=flowers`) and the whole archive
(`dataset=flowers_full`), as ImageSets of files with seeded, stratified splits.

    >>> from taskzoo.data.flowers import load_flowers
    >>> found = load_flowers(split_seed=0)                          # doctest: +SKIP
    >>> {k: len(v) for k, v in found.index.items()}                # doctest: +SKIP
    {'train': 400, 'dev': 100, 'test': 250}

Where the subset comes from, in order:

1. the hub's pinned folder `flower_photos_subset` (manifest `manifests/flower_photos_subset.txt`:
   750 photos, LICENSE.txt, README.md, manifest.tsv), from the cache or a mirror folder
   (`TASKZOO_MIRROR=<dir>` with `<dir>/flower_photos_subset/`);
2. else a copy derived here from the pinned `flower_photos.tgz` (cache, mirror
   `<dir>/flower_photos/flower_photos.tgz`, or its canonical URL): the same 750 names, resized
   by the mirror's own rule (`shrink`). Re-encoded JPEG bytes depend on the Pillow and
   libjpeg versions, so they cannot be checked against the manifest: the archive is verified
   (sha256), every photo taken is checked present, and the derived folder gets its own
   completion marker (`cache_root()/derived/<key>/flower_photos_subset.complete.json`).

`flowers_full` is the whole archive, extracted by the hub (`RemoteFolder` of the pinned
archive, safe extraction, its own marker) and not resized.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.resources
import io
import json
import os
import secrets
import shutil
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from taskzoo import hub
from taskzoo.data.images import ImageSet
from taskzoo.errors import DataError
from taskzoo.files import open_regular, write_json

__all__ = ["FLOWER_CLASSES", "FLOWERS_ARCHIVE", "FULL_COUNTS", "LICENSE", "FlowerData",
           "subset_folder", "full_folder", "subset_photos", "shrink", "split_per_class",
           "load_flowers", "load_flowers_full"]

FLOWER_CLASSES = ["daisy", "dandelion", "roses", "sunflowers", "tulips"]
SUBSET_GROUP = "flower_photos_subset"  # the mirror folder of the 750 photos
ARCHIVE_GROUP = "flower_photos"  # the mirror folder of flower_photos.tgz
FLOWERS_URL = "http://download.tensorflow.org/example_images/flower_photos.tgz"
FLOWERS_ARCHIVE = hub.RemoteFile(
    "flower_photos.tgz", "4c54ace7911aaffe13a365c34f650e71dd5bf1be0a58b464e5a7183e3e595d9c",
    228_813_984, (FLOWERS_URL,))
ARCHIVE_ROOT = "flower_photos"  # the folder inside the archive holding <class>/<photo>
FULL_COUNTS = {"daisy": 633, "dandelion": 898, "roses": 641, "sunflowers": 699, "tulips": 799}
SUBSET_SPLIT = {"train": 80, "dev": 20, "test": 50}  # photos per class (150 each)
FULL_SPLIT = {"dev": 0.1, "test": 0.2}  # of each class; the rest (about 70 %) trains
MAX_SIDE = 256  # the mirror's rule: a longer side above this is downscaled to it
LICENSE = "CC BY 2.0 per photo (Flickr photographers; attributions in LICENSE.txt)"
# bump when `shrink` changes: it is part of the derived folder's cache key
_RECIPE = "flowers-subset v1: longer side > 256 -> LANCZOS 256, JPEG q90 optimize"
_MANIFEST = "taskzoo/data/manifests/flower_photos_subset.txt"
_noted = False  # the derived copy's note is said once per process


@dataclass
class FlowerData:
    """One ImageSet of every photo, the indices of each split into it, a name and the
    pinned sources (for a weights card)."""

    images: ImageSet
    index: dict[str, list[int]]  # "train" / "dev" / "test" -> indices into `images`
    name: str
    files: list[dict[str, Any]]


@functools.lru_cache(maxsize=1)
def subset_folder() -> hub.RemoteFolder:
    """The 750-photo subset as a pinned folder. No archive: the canonical tgz holds the
    originals, not the mirror's resized bytes, so it could never verify this manifest."""
    text = (importlib.resources.files("taskzoo.data") / "manifests" /
            "flower_photos_subset.txt").read_text(encoding="utf-8")
    return hub.RemoteFolder(SUBSET_GROUP, hub.parse_manifest(text, source=_MANIFEST))


def full_folder() -> hub.RemoteFolder:
    """All 3,670 photos: the pinned archive's `flower_photos/` folder, extracted by the hub."""
    a = FLOWERS_ARCHIVE
    return hub.RemoteFolder("flower_photos", (), (hub.RemoteArchive(
        a.name, a.sha256, a.size, tuple(str(u) for u in a.urls), root=ARCHIVE_ROOT),))


def subset_photos() -> list[str]:
    """The subset's photos, `<class>/<upstream file name>`, sorted: 150 per class."""
    return sorted(rel for rel, _, _ in subset_folder().manifest
                  if rel.split("/", 1)[0] in FLOWER_CLASSES)


def shrink(data: bytes) -> bytes:
    """The mirror's resizing rule (flower_photos_subset/README.md): a photo whose longer side
    is above 256 px is downscaled to 256 (LANCZOS, aspect kept) and saved as JPEG quality 90
    with optimize=True; a smaller one is returned as its original bytes."""
    from PIL import Image, ImageOps

    with Image.open(io.BytesIO(data)) as im:
        im.load()
        im = ImageOps.exif_transpose(im)  # no upstream photo has an orientation tag
        w, h = im.size
        if max(w, h) <= MAX_SIDE:
            return data
        s = MAX_SIDE / max(w, h)
        size = (MAX_SIDE, max(1, round(h * s))) if w >= h else (max(1, round(w * s)), MAX_SIDE)
        out = io.BytesIO()
        im.resize(size, Image.Resampling.LANCZOS).save(out, "JPEG", quality=90, optimize=True)
        return out.getvalue()


def split_per_class(labels: np.ndarray, seed: int, *, dev: float | int,
                    test: float | int) -> dict[str, list[int]]:
    """Seeded, stratified train/dev/test indices: `dev` and `test` are counts per class
    (int) or fractions of each class (float, rounded); the rest of each class trains.

    >>> s = split_per_class(np.repeat([0, 1], 10), 0, dev=0.1, test=0.2)
    >>> [len(s[k]) for k in ("train", "dev", "test")]
    [14, 2, 4]
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    out: dict[str, list[int]] = {"train": [], "dev": [], "test": []}
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_dev = dev if isinstance(dev, int) else round(len(idx) * dev)
        n_test = test if isinstance(test, int) else round(len(idx) * test)
        if n_dev + n_test >= len(idx):
            raise DataError(f"class {c} has {len(idx)} images: {n_dev} dev + {n_test} test "
                            f"leave none to train on")
        out["test"] += idx[:n_test].tolist()
        out["dev"] += idx[n_test:n_test + n_dev].tolist()
        out["train"] += idx[n_test + n_dev:].tolist()
    return {k: sorted(v) for k, v in out.items()}


def _image_set(root: Path, photos: list[str]) -> ImageSet:
    labels = []
    for rel in photos:
        cls = rel.split("/", 1)[0]
        if cls not in FLOWER_CLASSES:
            raise DataError(f"{root / rel}: {cls!r} is not a flower class "
                            f"({', '.join(FLOWER_CLASSES)})")
        labels.append(FLOWER_CLASSES.index(cls))
    return ImageSet(labels=np.array(labels, dtype=np.int64), classes=list(FLOWER_CLASSES),
                    paths=[root / rel for rel in photos], channels=3)


# ---------------------------------------------------------------- the 750, from the archive


def _derived_target() -> tuple[Path, str]:
    key = hashlib.sha256("\n".join([_RECIPE, FLOWERS_ARCHIVE.sha256, *subset_photos()]
                                   ).encode()).hexdigest()
    return hub.cache_root() / "derived" / key[:16] / SUBSET_GROUP, key


def _marker(target: Path) -> Path:
    return target.with_name(target.name + ".complete.json")


def _derived_ok(target: Path, key: str) -> bool:
    """Is the derived folder complete and unchanged (sizes and sha256 as its marker says)?
    A file whose size or mtime changed since is hashed again."""
    try:
        with open_regular(_marker(target)) as fh:
            rec = json.loads(fh.read())
        files = rec["files"]
        if rec.get("key") != key or set(files) != {*subset_photos(), "LICENSE.txt"}:
            return False
        for rel, (sha, size, mtime) in files.items():
            st = (target / rel).stat()
            if st.st_size != size:
                return False
            if st.st_mtime_ns != mtime and hub.sha256_file(target / rel) != sha:
                return False
    except (OSError, ValueError, KeyError, TypeError):  # no marker, or a damaged one
        return False
    return True


def _derive(archive: Path, dest: Path) -> dict[str, list[Any]]:
    """Write the subset's photos (resized by `shrink`) and the upstream LICENSE.txt from the
    verified archive into `dest`; DataError when a photo is missing or unreadable."""
    wanted = {f"{ARCHIVE_ROOT}/{rel}": rel for rel in subset_photos()}
    wanted[f"{ARCHIVE_ROOT}/LICENSE.txt"] = "LICENSE.txt"
    files: dict[str, list[Any]] = {}
    try:
        with tarfile.open(archive, "r:*") as tf:
            for ti in tf:  # one pass over the stream: members are read in archive order
                rel = wanted.get(ti.name.removeprefix("./"))
                if rel is None or not ti.isreg() or rel in files:
                    continue
                fh = tf.extractfile(ti)
                assert fh is not None  # a regular member always has a file object
                data = fh.read()
                try:
                    out = data if rel == "LICENSE.txt" else shrink(data)
                except Exception as e:  # Pillow raises many types for a damaged photo
                    raise DataError(f"{ti.name} in {archive}: not a readable photo "
                                    f"({type(e).__name__}: {e})") from None
                path = dest / rel
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(out)
                files[rel] = [hashlib.sha256(out).hexdigest(), len(out)]
    except (tarfile.TarError, OSError, EOFError) as e:
        raise DataError(f"cannot read {archive}: {type(e).__name__}: {e}") from None
    if missing := sorted(set(wanted.values()) - files.keys()):
        raise DataError(f"{archive} lacks {len(missing)} of the {len(wanted) - 1} photos of "
                        f"flower_photos_subset (and LICENSE.txt) under {ARCHIVE_ROOT}/, e.g. "
                        f"{', '.join(missing[:3])}")
    return files


def _from_archive(target: Path, key: str, archive: Path) -> Path:
    """Build the derived folder beside `target` and rename it into place, then mark it."""
    from filelock import FileLock, Timeout

    hub.make_cache_dir(target.parent)
    lock = FileLock(f"{target}.lock", timeout=hub.default_lock_timeout())
    try:
        lock.acquire()
    except Timeout:
        raise hub.DownloadError(f"timed out waiting for the lock {target}.lock: another "
                                f"process is deriving the flowers; delete it if none is") from None
    try:
        if _derived_ok(target, key):  # another process finished while we waited
            return target
        for p in target.parent.iterdir():  # a killed process's leftovers (we hold the lock)
            if p.name.startswith(f".{target.name}.tmp-"):
                shutil.rmtree(p, ignore_errors=True)
        _marker(target).unlink(missing_ok=True)
        if os.path.lexists(target):
            shutil.rmtree(target)
        tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
        tmp.mkdir()
        try:
            files = _derive(archive, tmp)
            if hasattr(os, "sync"):
                os.sync()  # the photos on disk before the folder looks complete
            os.rename(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        recorded = {rel: [sha, size, (target / rel).stat().st_mtime_ns]
                    for rel, (sha, size) in files.items()}
        write_json(_marker(target), {"format": 1, "key": key, "recipe": _RECIPE,
                                     "archive": FLOWERS_ARCHIVE.sha256, "files": recorded})
    finally:
        lock.release()
    return target


def _note_derived() -> None:
    global _noted
    if not _noted:
        _noted = True
        print("taskzoo: flowers: the 750 photos were taken from flower_photos.tgz and resized "
              "here by the mirror's rule (longer side 256 px, LANCZOS, JPEG quality 90); "
              "pixels may differ slightly from the mirror's copy (Pillow/libjpeg versions)",
              file=sys.stderr)


def _subset_root() -> tuple[Path, bool]:
    """The subset's folder and whether it was derived from the archive."""
    try:
        return hub.fetch_folder(subset_folder(), group=SUBSET_GROUP), False
    except hub.DownloadError:
        pass  # no mirror copy: the archive is the canonical source
    target, key = _derived_target()
    if not _derived_ok(target, key):
        try:
            archive = hub.fetch(FLOWERS_ARCHIVE, group=ARCHIVE_GROUP)
        except hub.DownloadError as e:
            raise type(e)(f"{e}\n(dataset=flowers also reads a mirror folder "
                          f"{SUBSET_GROUP}/ holding the 750 photos of {_MANIFEST})") from None
        _from_archive(target, key, archive)
    _note_derived()
    return target, True


def load_flowers(*, split_seed: int = 0) -> FlowerData:
    """The 750-photo subset (150 per class): 80 train / 20 dev / 50 test per class, drawn by
    `split_seed` (400 / 100 / 250)."""
    root, derived = _subset_root()
    images = _image_set(root, subset_photos())
    index = split_per_class(images.labels, split_seed, dev=SUBSET_SPLIT["dev"],
                            test=SUBSET_SPLIT["test"])
    how = ("resized here from flower_photos.tgz; pixels may differ slightly from the mirror's"
           if derived else "the mirror's copy, 587 downscaled to 256 px")
    files = (hub.describe([FLOWERS_ARCHIVE]) if derived else
             [{"name": SUBSET_GROUP, "manifest": _MANIFEST,
               "files": len(subset_folder().manifest)}])
    return FlowerData(images, index, f"TensorFlow flower_photos, 750-photo subset ({how}; "
                      f"80/20/50 per class, split_seed {split_seed}); {LICENSE}", files)


def load_flowers_full(*, split_seed: int = 0) -> FlowerData:
    """All 3,670 photos of flower_photos.tgz, as published (not resized): per class 10 % dev,
    20 % test, the rest train, drawn by `split_seed`."""
    try:
        root = hub.fetch_folder(full_folder(), group=ARCHIVE_GROUP)
    except hub.DownloadError:
        # the pinned file's own error says more (its sha256, where to put it); when it can be
        # fetched after all, the folder is then extracted from the cached copy
        hub.fetch(FLOWERS_ARCHIVE, group=ARCHIVE_GROUP)
        root = hub.fetch_folder(full_folder(), group=ARCHIVE_GROUP)
    photos = sorted(f"{c}/{p.name}" for c in FLOWER_CLASSES if (root / c).is_dir()
                    for p in (root / c).iterdir() if p.suffix.lower() == ".jpg")
    found = {c: sum(p.startswith(c + "/") for p in photos) for c in FLOWER_CLASSES}
    if found != FULL_COUNTS:
        raise DataError(f"{root}: expected {FULL_COUNTS} photos per class, found {found}")
    images = _image_set(root, photos)
    index = split_per_class(images.labels, split_seed, **FULL_SPLIT)
    return FlowerData(images, index, f"TensorFlow flower_photos, all {len(photos):,} photos "
                      f"(10 % dev / 20 % test per class, split_seed {split_seed}); {LICENSE}",
                      hub.describe([FLOWERS_ARCHIVE]))
