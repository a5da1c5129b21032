"""Reading a user's own image files: `read_image` (one file, decoded into mode "L" or
"RGB"), `load_image_folder` (a class-per-folder tree, split into train/val) and
`load_image_files` (a plain folder of images without classes, for autoencoders). Both
loaders return `taskzoo.data.images.ImageSet`s holding `paths`.

    >>> from taskzoo.data.image_files import load_image_folder
    >>> splits = load_image_folder("my_photos")          # doctest: +SKIP
    >>> splits["train"].paths[0], splits["val"].channels  # doctest: +SKIP

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

import os
import re
import warnings
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from taskzoo.data.user_files import NotRegularFile, open_regular
from taskzoo.errors import DataError, UsageError

if TYPE_CHECKING:
    from PIL import Image

    from taskzoo.data.images import ImageSet

# ImageSet lives in taskzoo.data.images, which imports this module: it is imported inside
# the functions that build one, so neither module needs the other while it loads

__all__ = ["read_image", "load_image_folder", "load_image_files", "IMAGE_EXTENSIONS"]

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff",
                              ".webp", ".pgm", ".ppm", ".pnm"})


# ---------------------------------------------------------------- decoding one image


class UnreadableImage(Exception):
    """A file that is not a readable image; the message is the reason."""


def read_image(path: str | os.PathLike[str]) -> Image.Image:
    """Decode an image file fully into mode "L" or "RGB" (conversions: module docstring).

    Raises DataError naming the path for a missing, unreadable or truncated file.

    >>> read_image("photos/cat/1.jpg").mode  # doctest: +SKIP
    'RGB'
    """
    try:
        return decode_image(Path(path))
    except UnreadableImage as e:
        raise DataError(f"cannot read image {path}: {e}") from None


def decode_image(path: Path) -> Image.Image:
    """`read_image` without the DataError: raises UnreadableImage with the reason alone, for
    callers that gather the unreadable files instead of stopping at the first."""
    from PIL import Image, ImageOps

    try:
        # open_regular: a FIFO or device in the folder would block open() forever. An image
        # above Pillow's warning size but within its limit decodes fine, so its multi-line
        # DecompressionBombWarning is silenced here (scoped: no global filter); one above the
        # limit raises DecompressionBombError, which becomes one line below.
        with open_regular(path) as fh, warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(fh) as im:
                # load() decodes every byte: it catches the truncated files verify() misses
                im.load()
                try:
                    upright = ImageOps.exif_transpose(im)
                except Exception:  # a damaged EXIF block must not cost a readable image
                    upright = im
                if upright is None:
                    upright = im
                return _standard_mode(upright)
    except UnreadableImage:
        raise
    except FileNotFoundError:
        raise UnreadableImage("no such file") from None
    except NotRegularFile as e:
        raise UnreadableImage(str(e)) from None
    except Exception as e:  # Pillow's plugins raise many types for malformed files
        raise UnreadableImage(f"{type(e).__name__}: {e}") from None


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
        raise UnreadableImage(f"unsupported image mode {mode!r} ({e})") from None

# ---------------------------------------------------------------- a user's image folder


def _natural(name: str) -> tuple[list[object], str]:
    # "class2" before "class10"; ties broken by the plain name
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)], name


def _visible(name: str) -> bool:
    return not name.startswith(".")


def image_files_under(folder: Path) -> list[Path]:
    """Image files (by extension) under `folder`, recursively, hidden ones left out."""
    out = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted((d for d in dirnames if _visible(d)), key=_natural)
        out += [Path(dirpath) / f for f in sorted(filenames, key=_natural)
                if _visible(f) and Path(f).suffix.lower() in IMAGE_EXTENSIONS]
    return out


def looks_like_photos(folder: str | os.PathLike[str], *, sample: int = 24,
                      min_side: int = 64) -> bool:
    """Whether `folder`'s images are colour photos (what an ImageNet network was trained on)
    rather than small or grey pictures: at least 80 % of up to `sample` evenly spaced files are
    RGB with a shorter side of `min_side` px or more. Reads headers only.

    >>> looks_like_photos("~/holiday_photos")  # doctest: +SKIP
    True
    """
    from PIL import Image

    try:
        files = image_files_under(Path(folder).expanduser())
    except OSError:
        return False
    if not files:
        return False
    picked = files[:: max(1, len(files) // sample)][:sample]
    colour = 0
    for path in picked:
        try:
            with open_regular(path) as fh, warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                with Image.open(fh) as im:
                    colour += im.mode in ("RGB", "RGBA", "CMYK", "YCbCr") and min(im.size) >= min_side
        except Exception:  # an unreadable file is not a photo; reading them all comes later
            continue
    return colour >= 0.8 * len(picked)


def _decode_modes(files: list[Path]) -> tuple[list[str | None], dict[Path, str]]:
    """Decode every file once: its mode ("L"/"RGB"), or None with the reason in the dict."""

    def check(path: Path) -> str | None:
        try:
            return decode_image(path).mode
        except UnreadableImage as e:
            reasons[path] = str(e)
            return None

    reasons: dict[Path, str] = {}
    # Pillow decodes without the GIL: a few threads go through a large folder faster
    workers = min(8, os.cpu_count() or 1) if len(files) > 64 else 1
    with ThreadPoolExecutor(workers) as pool:
        modes = list(pool.map(check, files))
    return modes, reasons


def _check_class_name(folder: Path, name: str) -> None:
    """A class name is written to reports and weight cards as UTF-8: a folder name that is
    not UTF-8 (Python reads its bytes as surrogates) is refused here, before training, and
    not guessed, since two such names may differ only in the undecodable bytes."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        shown = os.fsencode(name).decode("utf-8", errors="replace")
        raise DataError(f"{folder}: the class folder {shown!r} has a name that is not valid "
                        f"UTF-8 (class names are written to reports as UTF-8): rename it "
                        f"with UTF-8 characters, e.g. convmv -f latin1 -t utf-8") from None


@dataclass
class _Scan:
    by_class: dict[str, list[Path]]  # class -> readable files, in order
    grey: dict[Path, bool]
    skipped: list[tuple[str, str]]


def _scan(folder: Path) -> _Scan:
    """Decode every image of `folder/<class>/...` once; unreadable files are skipped."""
    classes = sorted((d.name for d in folder.iterdir() if d.is_dir() and _visible(d.name)),
                     key=_natural)
    for c in classes:
        _check_class_name(folder, c)
    skipped = [(str(p), "not inside a class folder") for p in sorted(folder.iterdir())
               if p.is_file() and _visible(p.name) and p.suffix.lower() in IMAGE_EXTENSIONS]
    files = [(c, p) for c in classes for p in image_files_under(folder / c)]
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
    from taskzoo.data.images import ImageSet

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
        files = image_files_under(root)
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
    from taskzoo.data.images import ImageSet

    channels = 1 if all(m == "L" for _, m in kept) else 3
    return ImageSet(labels=np.zeros(len(kept), dtype=np.int64), classes=["image"],
                    paths=[p for p, _ in kept], channels=channels, skipped=skipped)
