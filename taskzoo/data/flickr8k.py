"""Flickr8k at 128x128: the 8,000 images of the standard train/dev/test lists and their captions.

    >>> from taskzoo.data.flickr8k import load_flickr8k
    >>> train = load_flickr8k("train")                       # doctest: +SKIP
    >>> len(train), train.images.channels, train.captions[0][0]  # doctest: +SKIP
    (6000, 3, 'A black dog is running after a white dog in the snow .')

The dataset is a pinned folder (`flickr8k_folder()`: a packaged gzipped manifest of its 8,009
files, `taskzoo/data/manifests/flickr8k_128.txt.gz`) obtained through the verified hub from
a mirror (TASKZOO_MIRROR=<dir> with <dir>/Flickr8k/) or the cache. There is no public URL:
the authors distribute Flickr8k on request
(https://hockenmaier.cs.illinois.edu/Framing_Image_Description/KCCA.html).

Layout of the folder: `Flickr8k_128/<name>.jpg` (8,000 JPEGs, 128x128 RGB, quality 85),
`images_128.tsv` (name, split, provenance), `Flickr8k_text/Flickr8k.token.txt` (captions,
`<name>#<0-4><TAB><caption>`), `Flickr8k_text/Flickr_8k.{train,dev,test}Images.txt` (the
standard split lists: 6,000 / 1,000 / 1,000) and the upstream annotation files.

License: research use only (Flickr8k terms); the images are Flickr photos under their owners'
copyright. Do not redistribute. Cite M. Hodosh, P. Young, J. Hockenmaier (2013), "Framing
Image Description as a Ranking Task: Data, Models and Evaluation Metrics", JAIR 47.

Oddities:

- The geometry is squashed: these files were resized from a copy already squashed to
  224x224 (aspect ratio not kept) down to 128x128. Fine for captioning, retrieval and
  colorization, not for anything that needs true proportions. A copy made from the original
  images will differ slightly in its pixels (and does not match the pins).
- The caption file has a key `2258277193_586949ec62.jpg.1#0..4` whose image is in no split;
  keys that do not end in ".jpg" are ignored. Some captions lack a final period and
  capitalisation is inconsistent (captions are returned as written, whitespace stripped).
"""

from __future__ import annotations

import functools
import importlib.resources
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from taskzoo import hub
from taskzoo.data.images import ImageSet
from taskzoo.errors import DataError, DownloadError, UsageError, did_you_mean

__all__ = ["Flickr8kSplit", "flickr8k_folder", "flickr8k_root", "load_flickr8k", "read_captions",
           "load_flickr8k_original",
           "FLICKR8K_GROUP", "FLICKR8K_COUNTS", "FLICKR8K_URL", "CAPTIONS_PER_IMAGE",
           "IMAGE_SIZE"]

FLICKR8K_GROUP = "Flickr8k"
FLICKR8K_URL = "https://hockenmaier.cs.illinois.edu/Framing_Image_Description/KCCA.html"
FLICKR8K_COUNTS = {"train": 6_000, "dev": 1_000, "test": 1_000}
CAPTIONS_PER_IMAGE = 5
IMAGE_SIZE = (128, 128)  # PIL (width, height)
IMAGE_DIR = "Flickr8k_128"
TOKEN_FILE = "Flickr8k_text/Flickr8k.token.txt"
SPLIT_FILES = {s: f"Flickr8k_text/Flickr_8k.{s}Images.txt" for s in FLICKR8K_COUNTS}
_MANIFEST = "flickr8k_128.txt.gz"


@dataclass
class Flickr8kSplit:
    """One split: the images (files, read on demand; sorted by file name) and their captions
    (`captions[i]`: the 5 captions of image i, in the caption file's #0..#4 order)."""

    images: ImageSet  # paths (or arrays), channels 3, labels all 0, classes ["image"]
    captions: list[list[str]]
    image_names: list[str] | None = None  # when the images are arrays rather than files

    def __post_init__(self) -> None:
        if len(self.captions) != len(self.images):
            raise DataError(f"Flickr8kSplit has {len(self.images)} images but "
                            f"{len(self.captions)} caption lists")

    def __len__(self) -> int:
        return len(self.images)

    @property
    def names(self) -> list[str]:
        """The image file names, e.g. "1000268201_693b08cb0e.jpg"."""
        if self.image_names is not None:
            return list(self.image_names)
        return [p.name for p in self.images.paths or ()]


@functools.lru_cache(maxsize=1)
def flickr8k_folder() -> hub.RemoteFolder:
    """Flickr8k (128x128) as a pinned folder: the packaged manifest of its 8,009 files and no
    archive (there is no public URL for these files: mirrors and the cache only)."""
    ref = importlib.resources.files("taskzoo.data") / "manifests" / _MANIFEST
    with importlib.resources.as_file(ref) as path:
        manifest = hub.read_manifest(path)
    return hub.RemoteFolder(FLICKR8K_GROUP, manifest)


def flickr8k_root() -> Path:
    """The verified Flickr8k folder (fetched from a mirror into the cache on first use).

    Raises the hub's DownloadError (OfflineError, IntegrityError) with where to put the
    folder and how to obtain the dataset.
    """
    try:
        return hub.fetch_folder(flickr8k_folder(), group=FLICKR8K_GROUP)
    except DownloadError as e:
        raise type(e)(
            f"{e}\nFlickr8k is distributed on request by its authors (research use only), "
            f"see {FLICKR8K_URL}; there is no public URL for these 128x128 files. Put the "
            f"folder at TASKZOO_MIRROR/{FLICKR8K_GROUP}/, holding {IMAGE_DIR}/ (8,000 JPEGs, "
            f"128x128), images_128.tsv and Flickr8k_text/ (captions and split lists), and "
            f"set TASKZOO_MIRROR=<dir>. A copy resized from the original images does not match "
            f"the pinned files: use it as a plain image folder "
            f"(taskzoo.data.image_files.load_image_files) instead.") from None


def _split_name(split: str) -> str:
    if split not in FLICKR8K_COUNTS:
        raise UsageError(f"Flickr8k split must be one of {', '.join(map(repr, FLICKR8K_COUNTS))}"
                         f", got {split!r}.{did_you_mean(str(split), FLICKR8K_COUNTS)}")
    return split


def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"cannot read {path}: {e}") from None


def read_captions(path: Path) -> dict[str, list[str]]:
    """`Flickr8k.token.txt` as image name -> captions in #0..#4 order, whitespace stripped.
    Keys that do not end in ".jpg" (the stray `*.jpg.1#n`) are left out."""
    return parse_captions(_read_lines(path), path)


def parse_captions(lines: list[str], path: Path) -> dict[str, list[str]]:
    """The lines of a caption file (`read_captions`); `path` names it in errors."""
    numbered: dict[str, dict[int, str]] = {}
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        key, tab, caption = line.partition("\t")
        name, hash_, number = key.strip().rpartition("#")
        if not tab or not hash_ or not number.isdigit():
            raise DataError(f"{path}:{lineno}: expected '<image>#<n>\\t<caption>', "
                            f"got {line[:120]!r}")
        if not name.endswith(".jpg"):
            continue
        got = numbered.setdefault(name, {})
        if int(number) in got:
            raise DataError(f"{path}:{lineno}: caption {key!r} is given twice")
        got[int(number)] = caption.strip()
    return {name: [c[k] for k in sorted(c)] for name, c in numbered.items()}


def load_flickr8k(split: str) -> Flickr8kSplit:
    """One standard split of Flickr8k: "train" (6,000 images), "dev" (1,000, the standard
    validation list) or "test" (1,000); 5 captions per image. Images are 128x128 RGB files
    (squashed, see the module docstring), sorted by file name and read on demand.

    Raises UsageError for another split name, DataError when the counts are not as expected.

    >>> dev = load_flickr8k("dev")  # doctest: +SKIP
    >>> dev.images.image(0).size, len(dev.captions[0])  # doctest: +SKIP
    ((128, 128), 5)
    """
    split = _split_name(split)
    root = flickr8k_root()
    expect = FLICKR8K_COUNTS[split]
    list_file = root / SPLIT_FILES[split]
    names = [n.strip() for n in _read_lines(list_file) if n.strip()]
    if len(set(names)) != len(names):
        raise DataError(f"{list_file}: {len(names) - len(set(names))} image names listed twice")
    if len(names) != expect:
        raise DataError(f"Flickr8k {split}: expected {expect} images in {list_file}, "
                        f"found {len(names)}")
    names.sort()
    pinned = {rel for rel, _, _ in flickr8k_folder().manifest}
    if missing := [n for n in names if f"{IMAGE_DIR}/{n}" not in pinned]:
        raise DataError(f"Flickr8k {split}: {len(missing)} listed images are not in "
                        f"{root / IMAGE_DIR}, e.g. {missing[0]}")
    captions = read_captions(root / TOKEN_FILE)
    wrong = [(n, len(captions.get(n, ()))) for n in names
             if len(captions.get(n, ())) != CAPTIONS_PER_IMAGE]
    if wrong:
        raise DataError(f"Flickr8k {split}: {len(wrong)} images do not have "
                        f"{CAPTIONS_PER_IMAGE} captions in {root / TOKEN_FILE}, e.g. "
                        f"{wrong[0][0]} has {wrong[0][1]}")
    images = ImageSet(labels=np.zeros(len(names), dtype=np.int64), classes=["image"],
                      paths=[root / IMAGE_DIR / n for n in names], channels=3)
    return Flickr8kSplit(images=images, captions=[list(captions[n]) for n in names])


# ---------------------------------------------------------------- your own original copy
def _original_members(path: Path) -> dict[str, Any]:
    """base name -> a function returning the file's bytes, over a folder (searched
    recursively, zips inside included) or one zip."""
    import zipfile

    found: dict[str, Any] = {}

    def add_zip(z: Path) -> None:
        try:
            archive = zipfile.ZipFile(z)
        except (OSError, zipfile.BadZipFile) as e:
            raise DataError(f"{z}: not a readable zip ({e})") from None
        for info in archive.infolist():
            name = info.filename.rsplit("/", 1)[-1]
            if name and not info.is_dir() and not info.filename.startswith("__MACOSX"):
                found.setdefault(name, lambda a=archive, i=info: a.read(i))

    if path.is_file() and path.suffix.lower() == ".zip":
        add_zip(path)
    elif path.is_dir():
        for f in sorted(path.rglob("*")):
            if f.suffix.lower() == ".zip":
                add_zip(f)
            elif f.is_file() and not f.name.startswith("."):
                found.setdefault(f.name, f.read_bytes)
    else:
        raise DataError(f"data={path}: no such folder or zip")
    return found


def _resize_original(raw: bytes, name: str) -> np.ndarray:
    """Squashed to 224x224, then to 128x128 with Lanczos: how the mirror's files were made
    (the JPEG round trip of the mirror's is not repeated, so pixels differ slightly)."""
    import io

    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(raw)) as im:
            im = im.convert("RGB").resize((224, 224), Image.Resampling.LANCZOS)
            return np.asarray(im.resize(IMAGE_SIZE, Image.Resampling.LANCZOS))
    except (UnidentifiedImageError, OSError) as e:
        raise DataError(f"{name}: not a readable image ({e})") from None


def load_flickr8k_original(path: Path) -> dict[str, Flickr8kSplit]:
    """Your copy of the original Flickr8k as the three standard splits, decoded in memory:
    a folder (or `Flickr8k_Dataset.zip`, or a folder holding it and `Flickr8k_text.zip`)
    with the JPEGs anywhere below it and the text files `Flickr8k.token.txt` and
    `Flickr_8k.{train,dev,test}Images.txt`. Each listed image is squashed to 128x128 the way
    the mirror's were (`_resize_original`); the pins do not apply to such a copy.

    Raises DataError naming the missing text file or the listed images not found.
    """
    from concurrent.futures import ThreadPoolExecutor

    from tqdm.auto import tqdm

    members = _original_members(path)
    need = [TOKEN_FILE.rsplit("/", 1)[-1], *(f.rsplit("/", 1)[-1] for f in SPLIT_FILES.values())]
    if missing := [n for n in need if n not in members]:
        raise DataError(f"data={path}: {', '.join(missing)} not found (expected the original "
                        f"Flickr8k_text files beside or inside the images' folder or zip)")
    captions = parse_captions(members[need[0]]().decode("utf-8", "replace").splitlines(),
                              path / need[0])
    out = {}
    for split, listing in SPLIT_FILES.items():
        names = sorted({n.strip() for n in members[listing.rsplit("/", 1)[-1]]().decode(
            "utf-8", "replace").splitlines() if n.strip()})
        absent = [n for n in names if n not in members]
        no_caps = [n for n in names if not captions.get(n)]
        if absent or no_caps:
            raise DataError(f"data={path}, {split}: {len(absent)} listed images not found "
                            f"(e.g. {(absent or ['-'])[0]}), {len(no_caps)} without captions "
                            f"(e.g. {(no_caps or ['-'])[0]})")
        with ThreadPoolExecutor(4) as pool:
            arrays = list(tqdm(pool.map(lambda n: _resize_original(members[n](), n), names),
                               total=len(names), desc=f"Flickr8k {split}: resizing", unit="img",
                               leave=False))
        images = ImageSet(labels=np.zeros(len(names), dtype=np.int64), classes=["image"],
                          arrays=np.stack(arrays) if arrays else
                          np.zeros((0, *IMAGE_SIZE[::-1], 3), np.uint8), channels=3)
        out[split] = Flickr8kSplit(images=images, captions=[captions[n] for n in names],
                                   image_names=names)
    return out
