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
    as_int,
    box_arrays,
    detection_set,
    image_sizes,
    shown,
)
from taskzoo.data.user_files import read_utf8
from taskzoo.errors import DataError

if TYPE_CHECKING:
    from taskzoo.data.detection.datasets import DetectionSet

__all__ = ["load_coco_json", "coco_splits"]

_Image = tuple[str, int | None, int | None]  # an image entry: file_name, width, height


# ---------------------------------------------------------------- COCO json


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
    by id: (file_name, width, height), the sizes as ints (None when absent). DataError, one
    line naming the file and the entry, for any malformed entry."""
    # read_utf8 opens only a regular file: a FIFO would block here for ever
    text = read_utf8(path, "the COCO json", DataError)
    try:
        data = json.loads(text)
    except RecursionError:
        raise DataError(f"the COCO json {path} is nested too deeply to be a COCO json "
                        f"(expected an object with the lists images, annotations and "
                        f"categories)") from None
    except ValueError as e:
        raise DataError(f"the COCO json {path} is not valid JSON: {e}") from None
    if not isinstance(data, dict) or not all(
            isinstance(data.get(k), list) for k in ("images", "annotations", "categories")):
        got = ", ".join(f"{k}: {type(data.get(k)).__name__}" for k in (
            "images", "annotations", "categories")) if isinstance(data, dict) else \
            f"a JSON {type(data).__name__}"
        raise DataError(f"{path}: expected a COCO json, an object with the lists images, "
                        f"annotations and categories (got {got})")
    cats = sorted(_category(path, k, c) for k, c in enumerate(data["categories"]))
    images: dict[int, _Image] = {}
    for k, entry in enumerate(data["images"]):
        i, image = _image(path, k, entry)
        if i in images:
            raise DataError(f"{path}: images[{k}]: the id {i} is given to two images")
        images[i] = image
    if not cats or not images:
        raise DataError(f"{path}: no {'categories' if not cats else 'images'}")
    ids, names = [c for c, _ in cats], [n for _, n in cats]
    if len(set(ids)) != len(ids):
        raise DataError(f"{path}: categories: the id {_first_repeat(ids)} is given to two "
                        f"categories")
    if len(set(names)) != len(names):
        # classes are matched by name (to the starting weights'): two would become one
        raise DataError(f"{path}: categories: two categories are named "
                        f"{_first_repeat(names)!r}: every category needs its own name")
    return data, cats, images


def _first_repeat(values: list[Any]) -> Any:
    seen = set()
    for v in values:
        if v in seen:
            return v
        seen.add(v)
    return None


def _entry(path: Path, key: str, k: int, entry: object) -> dict[str, Any]:
    if not isinstance(entry, dict):
        raise DataError(f"{path}: {key}[{k}] is not an object: {shown(entry)}")
    return entry


def _category(path: Path, k: int, entry: object) -> tuple[int, str]:
    """categories[k] as (id, name)."""
    c = _entry(path, "categories", k, entry)
    where = f"{path}: categories[{k}]"
    if (cid := as_int(c.get("id"))) is None:
        raise DataError(f"{where}: id {shown(c.get('id'))} is not an integer (each category "
                        f"needs an integer id and a name)")
    name = c.get("name")
    if isinstance(name, (int, float)) and not isinstance(name, bool):
        name = str(name)  # a category named 2, as some exporters write digit classes
    if not isinstance(name, str) or not name.strip():
        raise DataError(f"{where} (id {cid}): name {shown(name)} is not a non-empty string")
    return cid, name


def _image(path: Path, k: int, entry: object) -> tuple[int, _Image]:
    """images[k] as (id, (file_name, width, height)); the sizes None when not given."""
    im = _entry(path, "images", k, entry)
    where = f"{path}: images[{k}]"
    if (i := as_int(im.get("id"))) is None:
        raise DataError(f"{where}: id {shown(im.get('id'))} is not an integer (each image "
                        f"needs an integer id and a file_name)")
    name = im.get("file_name")
    if not isinstance(name, str) or not name.strip() or "\0" in name:
        raise DataError(f"{where} (id {i}): file_name {shown(name)} is not a file name (a "
                        f"path relative to the images folder, e.g. '000001.jpg')")
    sizes = []
    for field in ("width", "height"):
        value = im.get(field)
        n = as_int(value)
        if value is not None and (n is None or n <= 0):
            raise DataError(f"{where} (id {i}, {name}): {field} {shown(value)} is not a "
                            f"positive integer (the image's {field} in pixels, or leave it "
                            f"out)")
        sizes.append(n)
    return i, (name, sizes[0], sizes[1])


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
        problems.add(f"{path.name}: annotations[{k}]", f"not an object: {shown(ann)}")
        return None
    where = f"{path.name}: annotations[{k}] (id {shown(ann.get('id'), 40)})"
    # some exporters write iscrowd as "0": a string must not read as true
    raw = ann.get("iscrowd")
    crowd = 0 if raw is None else int(raw) if isinstance(raw, bool) else as_int(raw)
    if crowd not in (0, 1):
        problems.add(where, f"iscrowd must be 0 or 1, got {shown(ann.get('iscrowd'))}")
        return None
    if crowd:  # a crowd region, not one object: COCO leaves it out too
        return None
    img, cat, bbox = as_int(ann.get("image_id")), as_int(ann.get("category_id")), ann.get("bbox")
    if img not in images:
        problems.add(where, f"image_id {shown(ann.get('image_id'))} is not in images")
        return None
    if cat not in index:
        problems.add(where, f"category_id {shown(ann.get('category_id'))} is not in "
                            f"categories (ids {cats[0][0]}..{cats[-1][0]}, {len(cats)} "
                            f"categories)")
        return None
    if not (isinstance(bbox, list) and len(bbox) == 4 and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
            for v in bbox)):
        problems.add(where, f"bbox must be 4 finite numbers [x, y, width, height], got "
                            f"{shown(bbox)}")
        return None
    if (size := size_of[img]) is None:  # an unreadable image: skipped by the caller
        return None
    x, y, bw, bh = (float(v) for v in bbox)
    if bw <= 0 or bh <= 0:
        what = "box with a negative width or height" if min(bw, bh) < 0 else \
            "zero-width or zero-height box"
        problems.add(where, f"{what} {shown(bbox)} (bbox is [x, y, width, height])")
        return None
    w, h = size
    if min(x, y) < -PIXEL_TOLERANCE or x + bw > w + PIXEL_TOLERANCE \
            or y + bh > h + PIXEL_TOLERANCE:
        problems.add(where, f"box outside its image: bbox {shown(bbox)} in a {w}x{h} image "
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
