"""A COCO detection json as a `taskzoo.data.detection.datasets.DetectionSet` (see `files`
for the layouts `load_detection_data` accepts): `bbox` [x, y, w, h] in pixels, category ids
mapped to 0..K-1 in ascending order, `iscrowd` annotations left out, bad annotations
reported together by file and index.

    >>> load_coco_json("annotations/instances_train2017.json").classes[0]  # doctest: +SKIP
    'person'
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from taskzoo.data.detection.labels import (
    PIXEL_TOLERANCE,
    SPLITS,
    LabelProblems,
    box_arrays,
    detection_set,
    image_sizes,
)
from taskzoo.errors import DataError

if TYPE_CHECKING:
    from taskzoo.data.detection.datasets import DetectionSet

__all__ = ["load_coco_json", "coco_splits"]

_Image = tuple[str, Any, Any]  # an image entry: file_name, and width and height as given


# ---------------------------------------------------------------- COCO json


def _id(value: object) -> int | None:
    """A COCO id as an int (some exporters write "7"), or None when it is not one."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return None


def _coco_image_dir(json_path: Path, names: list[str]) -> Path:
    """The folder that holds the most of the json's `file_name`s (DataError if none)."""
    here = json_path.parent
    bases = [here, here / "images", here.parent, here.parent / "images"]
    if m := re.search(r"(?:train|val|test)\w*", json_path.stem):  # instances_train2017.json
        bases += [here / "images" / m.group(0), here.parent / "images" / m.group(0),
                  here.parent / m.group(0)]
    bases = [b for i, b in enumerate(bases) if b.is_dir() and b not in bases[:i]]
    best, hits = here, 0
    for b in bases:
        n = sum((b / f).is_file() for f in names)
        if n > hits:
            best, hits = b, n
        if n == len(names):
            break
    if not hits:
        raise DataError(f"{json_path}: none of its {len(names)} images were found (e.g. "
                        f"{names[0]!r}); searched: {', '.join(map(str, bases))}. Put them "
                        f"in an images/ folder beside the json")
    return best


def load_coco_json(path: str | os.PathLike[str]) -> DetectionSet:
    """A COCO detection json as one DetectionSet, images sorted by `file_name`.

    >>> load_coco_json("annotations/instances_train2017.json").classes[0]  # doctest: +SKIP
    'person'
    """
    path = Path(path)
    data, cats, images = _read_coco(path)
    index = {cid: k for k, (cid, _) in enumerate(cats)}
    order = sorted(images, key=lambda i: images[i][0])
    base = _coco_image_dir(path, [images[i][0] for i in order])
    files = [base / images[i][0] for i in order]
    sizes, reasons = image_sizes(files)
    size_of = dict(zip(order, sizes, strict=True))
    problems = LabelProblems()
    _check_sizes(path, images, size_of, problems)
    found: dict[int, tuple[list[list[float]], list[int]]] = {i: ([], []) for i in images}
    for k, ann in enumerate(data["annotations"]):
        got = _annotation_box(path, k, ann, images, cats, index, size_of, problems)
        if got is not None:
            img, box, label = got
            found[img][0].append(box)
            found[img][1].append(label)
    problems.check(str(path))
    kept, skipped = [], []
    for i, file in zip(order, files, strict=True):
        if (size := size_of[i]) is None:
            skipped.append((str(file), reasons[file]))
        else:
            kept.append((file, size, box_arrays(*found[i])))
    return detection_set(kept, [n for _, n in cats], path.stem, skipped)


def _read_coco(path: Path) -> tuple[dict[str, Any], list[tuple[int, str]], dict[int, _Image]]:
    """The json's object, its categories (id, name) in ascending id order, and its images
    by id: (file_name, width, height), the sizes as given (None when absent)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise DataError(f"cannot read the COCO json {path}: {e}") from None
    if not isinstance(data, dict) or not all(
            isinstance(data.get(k), list) for k in ("images", "annotations", "categories")):
        raise DataError(f"{path}: expected a COCO json, an object with the lists images, "
                        f"annotations and categories")
    try:
        cats = sorted((int(c["id"]), str(c["name"])) for c in data["categories"])
        images = {int(im["id"]): (str(im["file_name"]), im.get("width"), im.get("height"))
                  for im in data["images"]}
    except (TypeError, KeyError, ValueError) as e:
        raise DataError(f"{path}: malformed categories or images entry ({type(e).__name__}: "
                        f"{e}): each needs an id, and a name or a file_name") from None
    if not cats or not images:
        raise DataError(f"{path}: no {'categories' if not cats else 'images'}")
    if len(images) != len(data["images"]) or len({c for c, _ in cats}) != len(cats):
        raise DataError(f"{path}: the same id is given to two images or two categories")
    return data, cats, images


def _check_sizes(path: Path, images: dict[int, _Image],
                 size_of: dict[int, tuple[int, int] | None], problems: LabelProblems) -> None:
    """A problem for each image whose width and height in the json differ from its file's."""
    for i, size in size_of.items():
        _, w, h = images[i]
        if size is not None and w is not None and h is not None and (w, h) != size:
            # read_image applies EXIF orientation: boxes must be for the upright image
            turned = " (upright, by its EXIF orientation)" if (h, w) == size else ""
            problems.add(f"{path.name}: image id {i} ({images[i][0]})",
                         f"{w}x{h} in the json but the file is {size[0]}x{size[1]}{turned}")


def _annotation_box(path: Path, k: int, ann: object, images: dict[int, _Image],
                    cats: list[tuple[int, str]], index: dict[int, int],
                    size_of: dict[int, tuple[int, int] | None], problems: LabelProblems
                    ) -> tuple[int, list[float], int] | None:
    """Annotation `k` as (image id, xyxy box clipped to the image, class index), or None
    for a crowd region, a box on an unreadable image, or a problem (added to `problems`)."""
    if not isinstance(ann, dict):
        problems.add(f"{path.name}: annotations[{k}]", f"not an object: {ann!r:.80}")
        return None
    if ann.get("iscrowd"):  # a crowd region, not one object: COCO leaves it out too
        return None
    where = f"{path.name}: annotations[{k}] (id {ann.get('id')})"
    img, cat, bbox = _id(ann.get("image_id")), _id(ann.get("category_id")), ann.get("bbox")
    if img not in images:
        problems.add(where, f"image_id {ann.get('image_id')!r} is not in images")
        return None
    if cat not in index:
        problems.add(where, f"category_id {ann.get('category_id')!r} is not in "
                            f"categories (ids {cats[0][0]}..{cats[-1][0]}, {len(cats)} "
                            f"categories)")
        return None
    if not (isinstance(bbox, list) and len(bbox) == 4 and all(
            isinstance(v, (int, float)) and math.isfinite(v) for v in bbox)):
        problems.add(where, f"bbox must be 4 numbers [x, y, width, height], got {bbox!r}")
        return None
    if (size := size_of[img]) is None:  # an unreadable image: skipped by the caller
        return None
    x, y, bw, bh = (float(v) for v in bbox)
    if bw <= 0 or bh <= 0:
        problems.add(where, f"zero-width or zero-height box {bbox}")
        return None
    w, h = size
    if min(x, y) < -PIXEL_TOLERANCE or x + bw > w + PIXEL_TOLERANCE \
            or y + bh > h + PIXEL_TOLERANCE:
        problems.add(where, f"box outside its image: bbox {bbox} in a {w}x{h} image "
                            f"({images[img][0]})")
        return None
    box = [min(max(x, 0.0), w), min(max(y, 0.0), h), min(x + bw, w), min(y + bh, h)]
    if box[2] <= box[0] or box[3] <= box[1]:
        problems.add(where, "zero-width or zero-height box once clipped to its image")
        return None
    return img, box, index[cat]


def coco_splits(jsons: list[Path]) -> dict[str, DetectionSet]:
    """One split per json of a folder (instances_train*.json, instances_val*.json, ...), or
    "train" for a single one; every split must have the same categories."""
    if len(jsons) > 1 and (inst := [j for j in jsons if j.name.startswith("instances")]):
        jsons = inst  # beside captions_*.json and person_keypoints_*.json
    if len(jsons) == 1:
        return {"train": load_coco_json(jsons[0])}
    by_split: dict[str, Path] = {}
    for j in jsons:
        tokens = [s for s in SPLITS if s in j.stem.lower()]
        if len(tokens) != 1 or tokens[0] in by_split:
            raise DataError(f"{j.parent} holds {len(jsons)} json files "
                            f"({', '.join(p.name for p in jsons)}) and which split each is "
                            f"cannot be told from its name: give the path of one json")
        by_split[tokens[0]] = j
    if "train" not in by_split:
        raise DataError(f"{jsons[0].parent}: no training json among "
                        f"{', '.join(p.name for p in jsons)}: give the path of one json")
    out = {s: load_coco_json(by_split[s]) for s in SPLITS if s in by_split}
    for s, got in out.items():  # label ids index the classes: every split needs the same
        if got.classes != out["train"].classes:
            raise DataError(f"{by_split[s]}: its categories differ from those of "
                            f"{by_split['train']} ({len(got.classes)} vs "
                            f"{len(out['train'].classes)}): every split needs the same ones")
    return out
