"""What the detection readers share (`files` for YOLO and plain folders,
`coco` for COCO json): the label-problem list raised as one DataError, image
sizes (decoding the user's files once), and assembling a DetectionSet."""

from __future__ import annotations

import os
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from taskzoo.data.image_files import UnreadableImage, decode_image
from taskzoo.errors import DataError

if TYPE_CHECKING:
    from taskzoo.data.detection.datasets import DetectionSet

# DetectionSet lives in taskzoo.data.detection.datasets, which imports the readers: it is imported
# inside the function that builds one, as image_files does with ImageSet

YOLO_TOLERANCE = 0.01  # normalised units a corner may stray outside 0..1 and be clipped
PIXEL_TOLERANCE = 1.0  # pixels a COCO box may stray outside its image and be clipped
MAX_SHOWN = 10
SPLITS = ("train", "val", "test")
_INT = re.compile(r"\s*-?[0-9]{1,18}\s*")  # an int written as text, ASCII digits only


class LabelProblems:
    """Bad labels gathered over a dataset, raised together by `check` as one DataError.

    >>> p = LabelProblems()
    >>> p.add("a.txt:3", "class id 7 out of range")
    >>> p.check("my data")
    Traceback (most recent call last):
    ...
    taskzoo.errors.DataError: 1 label problem in my data:
      a.txt:3: class id 7 out of range
    """

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, where: str, message: str) -> None:
        self.items.append(f"{where}: {message}")

    def check(self, what: str) -> None:
        """Raise DataError listing the first MAX_SHOWN problems (and how many more)."""
        n = len(self.items)
        if not n:
            return
        shown = "".join(f"\n  {p}" for p in self.items[:MAX_SHOWN])
        more = f"\n  ... and {n - MAX_SHOWN} more" if n > MAX_SHOWN else ""
        raise DataError(f"{n} label problem{'s' if n > 1 else ''} in {what}:{shown}{more}")


def as_int(value: object) -> int | None:
    """`value` as an int when it is one however written (7, 7.0, "7", " 7 "), else None.

    Exporters write COCO ids and sizes, and YAML `nc`, as strings or floats; a bool is not
    taken for 0 or 1, nor 7.5 rounded.

    >>> [as_int(v) for v in (7, 7.0, "7", "-3", 7.5, "7a", True, None, [7])]
    [7, 7, 7, -3, None, None, None, None, None]
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    if isinstance(value, str) and _INT.fullmatch(value):
        return int(value)
    return None


def shown(value: object, limit: int = 80) -> str:
    """`repr(value)` cut to `limit` characters: a message quotes a user's value, not a
    megabyte of it."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ---------------------------------------------------------------- images


def image_sizes(paths: list[Path], *, decode: bool = True
                ) -> tuple[list[tuple[int, int] | None], dict[Path, str]]:
    """(W, H) of each image as `read_image` returns it (EXIF orientation applied), or None
    with the reason in the dict. `decode=False` reads only the headers: for pinned files,
    whose bytes are already verified; a user's files are decoded whole, to catch the
    truncated ones before training does."""
    from PIL import Image

    reasons: dict[Path, str] = {}

    def size(path: Path) -> tuple[int, int] | None:
        try:
            if decode:
                return decode_image(path).size
            with Image.open(path) as im:
                w, h = im.size
                # orientations 5-8 rotate by 90 degrees: read_image returns the image upright
                return (h, w) if im.getexif().get(0x0112) in (5, 6, 7, 8) else (w, h)
        except UnreadableImage as e:
            reasons[path] = str(e)
        except Exception as e:  # Pillow's plugins raise many types for malformed files
            reasons[path] = f"{type(e).__name__}: {e}"
        return None

    # Pillow decodes without the GIL: a few threads go through a large folder faster
    workers = min(8, os.cpu_count() or 1) if decode and len(paths) > 64 else 1
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(size, paths)), reasons


def no_boxes() -> tuple[np.ndarray, np.ndarray]:
    """The boxes [0, 4] and labels [0] of an image with no objects."""
    return np.zeros((0, 4), np.float32), np.zeros(0, np.int64)


def box_arrays(boxes: list[list[float]], labels: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """One image's boxes (float32 [N, 4]) and labels (int64 [N]) as arrays."""
    if not boxes:
        return no_boxes()
    return np.asarray(boxes, np.float32), np.asarray(labels, np.int64)


def detection_set(kept: list[tuple[Path, tuple[int, int], tuple[np.ndarray, np.ndarray]]],
                  classes: list[str], name: str, skipped: list[tuple[str, str]]
                  ) -> DetectionSet:
    """A DetectionSet of the readable images: (path, size, (boxes, labels)) each."""
    from taskzoo.data.detection.datasets import DetectionSet

    return DetectionSet(paths=[p for p, _, _ in kept], boxes=[b for _, _, (b, _) in kept],
                        labels=[y for _, _, (_, y) in kept], classes=list(classes),
                        sizes=[s for _, s, _ in kept], name=name, skipped=skipped)
