"""Reading a user's own object-detection data into `taskzoo.data.detection.datasets.DetectionSet`s:
`load_detection_data` (an Ultralytics YOLO dataset, a COCO json, or a plain `images/` +
`labels/` folder), and the YOLO label reader that the packaged coco128 loader shares. The
COCO json reader is `coco`, what both share `labels`.

    >>> from taskzoo.data.detection.files import load_detection_data
    >>> splits = load_detection_data("my_dataset/data.yaml")  # doctest: +SKIP
    >>> sorted(splits), splits["train"].classes[:2]            # doctest: +SKIP
    (['train', 'val'], ['cat', 'dog'])

Accepted layouts (`load_detection_data(path)`):

- YOLO (Ultralytics): a data yaml (or a folder holding `data.yaml`, or exactly one `*.yaml`)
  with `path` (optional root, relative to the yaml's folder), `train`, optional `val` (or
  `validation`) and `test` (each a folder of images, a `.txt` listing image paths, or a
  list of those), and `names` (a list, or a mapping {id: name} with ids 0..K-1, each name
  its own). Without `val` only "train" (and "test") is returned: the detection task then
  holds out `dev_images` of train as dev. An
  image's label file is found by Ultralytics' rule: the last `/images/` component of its
  path becomes `/labels/` and the suffix `.txt`. A missing label file = no objects. Lines:
  `class x_center y_center width height`, normalised to 0..1.
- COCO: a json file (or a folder holding `annotations/*.json`, or one top-level `*.json`).
  Images are found relative to the json's folder, an `images/` folder beside it, the parent
  of an `annotations/` folder, or `images/<train2017>` there (the token taken from the json's
  name). `bbox` is `[x, y, w, h]` in pixels; category ids map to 0..K-1 in ascending id order;
  `iscrowd` annotations are left out. One json = the "train" split; a folder of several
  (`instances_train*.json`, `instances_val*.json`) gives one split per json.
- Plain: a folder with `images/` (or `images/{train,val,test}/`), `labels/` (YOLO lines) and
  `classes.txt` (one name per line, line i = class id i) or a `data.yaml` holding `names`.

Bad labels (class id out of range, a box outside its image beyond the tolerance, a
malformed line, a zero-width or zero-height box) are gathered over the whole dataset and
raised as one DataError naming each file and line (up to 10, then how many more). Boxes
slightly outside the image (by at most `labels.YOLO_TOLERANCE` of its size, or
`labels.PIXEL_TOLERANCE` px for COCO) are clipped to it. Every image is decoded once:
unreadable or truncated files are left out and listed, with the reason, in the split's
`skipped`.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from taskzoo.data.detection.coco import coco_splits, load_coco_json
from taskzoo.data.detection.labels import (
    SPLITS,
    YOLO_TOLERANCE,
    LabelProblems,
    as_int,
    box_arrays,
    detection_set,
    image_sizes,
    no_boxes,
    shown,
)
from taskzoo.data.image_files import IMAGE_EXTENSIONS, image_files_under
from taskzoo.data.user_files import UnreadableText, file_kind, read_utf8, utf8_text
from taskzoo.errors import DataError

if TYPE_CHECKING:
    from taskzoo.data.detection.datasets import DetectionSet

__all__ = ["load_detection_data", "load_yolo_yaml", "read_yolo_split", "read_yolo_labels",
           "yolo_label_path", "read_class_names"]

_LAYOUTS = ("a YOLO data yaml (train, val, names), a COCO json (annotations/*.json), or "
            "images/ + labels/ with classes.txt")


# ---------------------------------------------------------------- YOLO labels


def yolo_label_path(image: str | os.PathLike[str]) -> Path:
    """Ultralytics' rule: the last `/images/` component becomes `/labels/`, suffix `.txt`.

    >>> yolo_label_path("/data/images/train/1.jpg").as_posix()
    '/data/labels/train/1.txt'
    """
    s = os.fspath(image)
    sa, sb = f"{os.sep}images{os.sep}", f"{os.sep}labels{os.sep}"
    return Path(os.path.splitext(sb.join(s.rsplit(sa, 1)))[0] + ".txt")


def read_yolo_labels(path: Path, size: tuple[int, int], num_classes: int,
                     problems: LabelProblems, *, names_from: str = ""
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Boxes (float32 xyxy pixels) and labels (int64) of one YOLO label file for an image of
    `size` (W, H). A missing file is an image with no objects. Bad lines are added to
    `problems` (file:line) and left out; corners within YOLO_TOLERANCE outside 0..1 are
    clipped. `names_from` ends the out-of-range message, e.g. " in data.yaml"."""
    try:
        text = utf8_text(path)  # never opens a FIFO or device, which would block for ever
    except FileNotFoundError:
        return no_boxes()
    except UnreadableText as e:
        problems.add(str(path), f"the label file {e}: expected a UTF-8 text file of YOLO lines")
        return no_boxes()
    w, h = size
    boxes: list[list[float]] = []
    labels: list[int] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        where, shown = f"{path}:{lineno}", repr(line.strip()[:80])
        if len(parts) != 5:
            problems.add(where, f"expected 5 numbers 'class x_center y_center width height', "
                                f"got {len(parts)}: {shown} (segmentation and pose lines are "
                                f"not read)")
            continue
        try:
            nums = [float(p) for p in parts]
        except ValueError:
            problems.add(where, f"not a number in {shown}")
            continue
        if not all(math.isfinite(v) for v in nums):
            problems.add(where, f"not a finite number in {shown}")
            continue
        cls, cx, cy, bw, bh = nums
        if cls != int(cls) or not 0 <= cls < num_classes:
            problems.add(where, f"class id {parts[0]} out of range: valid ids are "
                                f"0..{num_classes - 1} ({num_classes} names{names_from})")
            continue
        if bw <= 0 or bh <= 0:
            problems.add(where, f"zero-width or zero-height box (width {parts[3]}, height "
                                f"{parts[4]})")
            continue
        x1, y1, x2, y2 = cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2
        if min(x1, y1) < -YOLO_TOLERANCE or max(x2, y2) > 1 + YOLO_TOLERANCE:
            problems.add(where, f"box outside its image: corners ({x1:.4g}, {y1:.4g}) - "
                                f"({x2:.4g}, {y2:.4g}), normalised coordinates must lie in "
                                f"0..1 (tolerance {YOLO_TOLERANCE})")
            continue
        x1, y1, x2, y2 = (min(max(v, 0.0), 1.0) for v in (x1, y1, x2, y2))
        if x2 <= x1 or y2 <= y1:
            problems.add(where, "zero-width or zero-height box once clipped to its image")
            continue
        boxes.append([x1 * w, y1 * h, x2 * w, y2 * h])
        labels.append(int(cls))
    return box_arrays(boxes, labels)


def read_yolo_split(images: list[Path], classes: list[str], *, name: str,
                    problems: LabelProblems, decode: bool = True,
                    names_from: str = "") -> DetectionSet:
    """A DetectionSet of `images` (in that order) with their YOLO labels (`yolo_label_path`).
    Unreadable images go to `skipped`; bad labels to `problems` (the caller raises)."""
    sizes, reasons = image_sizes(images, decode=decode)
    kept: list[tuple[Path, tuple[int, int], tuple[np.ndarray, np.ndarray]]] = []
    skipped = []
    for path, size in zip(images, sizes, strict=True):
        if size is None:
            skipped.append((str(path), reasons[path]))
            continue
        kept.append((path, size, read_yolo_labels(yolo_label_path(path), size, len(classes),
                                                  problems, names_from=names_from)))
    return detection_set(kept, classes, name, skipped)


def read_class_names(path: Path) -> list[str]:
    """`classes.txt`: one name per line, line i = class id i (trailing blank lines ignored)."""
    text = read_utf8(path, "the class names", DataError)
    lines = [line.strip() for line in text.splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    if not lines:
        raise DataError(f"{path} is empty: expected one class name per line")
    if "" in lines:
        raise DataError(f"{path}:{lines.index('') + 1}: empty class name (line i is the name "
                        f"of class id i - 1, so blank lines would shift the ids)")
    return lines


# ---------------------------------------------------------------- YOLO data yaml


def _read_yaml(path: Path) -> dict[str, Any]:
    import yaml

    text = read_utf8(path, "the data yaml", DataError)
    try:
        data = yaml.safe_load(text)
    except RecursionError:
        raise DataError(f"{path} is nested too deeply to be a data yaml") from None
    except yaml.YAMLError as e:
        # PyYAML's message spans lines (the context and a caret): keep the problem and where
        mark = getattr(e, "problem_mark", None)
        at = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        why = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise DataError(f"{path} is not valid YAML{at}: {why}") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a mapping with the keys train, val and names, got "
                        f"{type(data).__name__}")
    return data


def _yaml_names(data: dict[str, Any], path: Path) -> list[str]:
    names, nc = data.get("names"), data.get("nc")
    if names is None:
        raise DataError(f"{path}: no 'names': expected the class names, a list or a mapping "
                        f"{{0: name, 1: name, ...}}")
    if isinstance(names, dict):
        keyed = {as_int(k): v for k, v in names.items()}
        if None in keyed:
            raise DataError(f"{path}: names: the keys must be class ids 0, 1, ..., got "
                            f"{shown(list(names)[:10])}")
        if sorted(keyed) != list(range(len(keyed))):
            raise DataError(f"{path}: names: {len(keyed)} classes need the ids "
                            f"0..{len(keyed) - 1}, got {sorted(keyed)[:10]}")
        classes = [keyed[i] for i in range(len(keyed))]
    elif isinstance(names, list):
        classes = names
    else:
        raise DataError(f"{path}: names must be a list or a mapping {{id: name}}, got "
                        f"{type(names).__name__}")
    if not classes:
        raise DataError(f"{path}: names is empty: a detector needs at least one class")
    classes = [_class_name(n, i, path) for i, n in enumerate(classes)]
    if len(set(classes)) != len(classes):
        # classes are matched by name (to the starting weights'): two would become one
        twice = next(n for i, n in enumerate(classes) if n in classes[:i])
        raise DataError(f"{path}: names: {twice!r} names two classes: every class needs its "
                        f"own name")
    if nc is not None and as_int(nc) != len(classes):  # nc: "2" is 2, as Ultralytics reads it
        raise DataError(f"{path}: nc is {shown(nc)} but names lists {len(classes)} classes")
    return classes


def _class_name(name: object, i: int, path: Path) -> str:
    """A class name from the yaml: a string, or a number (a class named 7) as text."""
    if isinstance(name, (int, float)) and not isinstance(name, bool):
        name = str(name)
    if not isinstance(name, str) or not name.strip():
        raise DataError(f"{path}: names: class {i} is {shown(name)}, not a name (a non-empty "
                        f"string)")
    return name


def _yolo_images(spec: object, root: Path, yaml_path: Path, key: str) -> list[Path]:
    entries = spec if isinstance(spec, list) else [spec]
    if not entries or not all(isinstance(e, str) and e for e in entries):
        raise DataError(f"{yaml_path}: {key} must be a folder, a .txt list of images, or a "
                        f"list of those, got {spec!r}")
    out: list[Path] = []
    for entry in entries:
        p = root / entry
        if p.is_dir():
            found = image_files_under(p)
        elif p.is_file() and p.suffix.lower() == ".txt":
            found = []
            listed = read_utf8(p, f"{yaml_path}: {key}: the image list", DataError).splitlines()
            for line in listed:
                if not (line := line.strip()):
                    continue
                # a relative line ("./images/1.jpg") is relative to the list's folder, as in
                # Ultralytics, else to the dataset root
                q = p.parent / line if (p.parent / line).exists() else root / line
                if q.suffix.lower() in IMAGE_EXTENSIONS:
                    found.append(q)
        else:
            what = f"is {file_kind(p)}" if p.exists() and file_kind(p) else "does not exist"
            raise DataError(f"{yaml_path}: {key}: {entry!r} -> {p} {what} (expected a "
                            f"folder of images or a .txt file listing image paths)")
        if not found:
            raise DataError(f"{yaml_path}: {key}: no images in {p} (extensions: "
                            f"{', '.join(sorted(IMAGE_EXTENSIONS))})")
        out += found
    return out


def load_yolo_yaml(path: str | os.PathLike[str]) -> dict[str, DetectionSet]:
    """An Ultralytics data yaml: "train", and "val" and "test" where it names them, as
    DetectionSets (module docstring).

    >>> load_yolo_yaml("coco128.yaml")["val"].num_boxes  # doctest: +SKIP
    929
    """
    path = Path(path)
    data = _read_yaml(path)
    classes = _yaml_names(data, path)
    root = path.parent / str(data["path"]) if data.get("path") else path.parent
    if not root.is_dir():
        raise DataError(f"{path}: path: {data['path']!r} -> {root} is not a folder (a "
                        f"relative path is taken from the yaml's folder)")
    if "val" not in data and "validation" in data:
        data["val"] = data["validation"]
    if not data.get("train"):
        raise DataError(f"{path}: no train: expected train (and optionally val and test), "
                        f"each a folder of images relative to {root}")
    problems = LabelProblems()
    out = {}
    for split in SPLITS:
        if data.get(split):
            images = _yolo_images(data[split], root, path, split)
            out[split] = read_yolo_split(images, classes, name=f"{path.stem} {split}",
                                         problems=problems, names_from=f" in {path.name}")
    problems.check(str(path))
    return _checked(out, path, _YOLO_HINT)


# ---------------------------------------------------------------- dispatch


def _plain(root: Path, classes: list[str], names_from: str) -> dict[str, DetectionSet]:
    images = root / "images"
    parts = {s: images / s for s in SPLITS if (images / s).is_dir()}
    if "train" not in parts:
        parts = {"train": images}
    problems = LabelProblems()
    out = {}
    for split, folder in parts.items():
        if not (files := image_files_under(folder)):
            raise DataError(f"no images in {folder} (extensions: "
                            f"{', '.join(sorted(IMAGE_EXTENSIONS))})")
        out[split] = read_yolo_split(files, classes, name=f"{root.name} {split}",
                                     problems=problems, names_from=names_from)
    problems.check(str(root))
    return _checked(out, root, _YOLO_HINT)


_YOLO_HINT = "expected YOLO label files such as {label}"
_COCO_HINT = "expected annotations (with iscrowd 0) in the json"


def _checked(out: dict[str, DetectionSet], where: Path, hint: str) -> dict[str, DetectionSet]:
    """Every split has a readable image, and the training images have boxes."""
    for split, s in out.items():
        if not len(s):
            raise DataError(f"{where}: no readable images in {split} ({len(s.skipped)} could "
                            f"not be read, e.g. {s.skipped[0][0]}: {s.skipped[0][1]})")
    train = out["train"]
    if not train.num_boxes:
        raise DataError(f"{where}: the {len(train)} training images have no boxes: "
                        f"{hint.format(label=yolo_label_path(train.paths[0]))}")
    return out


def load_detection_data(path: str | os.PathLike[str]) -> dict[str, DetectionSet]:
    """A user's detection dataset as {"train", "val", "test"} DetectionSets (those it has):
    a YOLO data yaml, a COCO json, or a folder holding one of them or images/ + labels/ +
    classes.txt (see the module docstring for each layout and the label checks).

    >>> splits = load_detection_data("datasets/coco128")  # doctest: +SKIP
    >>> splits["train"].num_boxes, splits["train"].boxes[0].dtype  # doctest: +SKIP
    (929, dtype('float32'))
    """
    p = Path(path)
    if not p.exists():
        raise DataError(f"detection data {p} does not exist (expected {_LAYOUTS})")
    if not p.is_dir() and (kind := file_kind(p)):
        raise DataError(f"detection data {p} is {kind}, not a regular file (expected "
                        f"{_LAYOUTS})")
    if p.is_file():
        if p.suffix.lower() in (".yaml", ".yml"):
            return load_yolo_yaml(p)
        if p.suffix.lower() == ".json":
            return _checked({"train": load_coco_json(p)}, p, _COCO_HINT)
        raise DataError(f"{p}: expected a .yaml (YOLO) or .json (COCO) file, or a folder")
    yamls = sorted(q for q in p.iterdir() if q.suffix.lower() in (".yaml", ".yml"))
    if (p / "data.yaml").is_file():
        yamls = [p / "data.yaml"]
    if len(yamls) > 1:
        raise DataError(f"{p} holds {len(yamls)} yaml files ({', '.join(q.name for q in yamls)})"
                        f": give the path of the data yaml, or name it data.yaml")
    if yamls:
        data = _read_yaml(yamls[0])
        if "train" in data or not (p / "images").is_dir():
            return load_yolo_yaml(yamls[0])
        # names only, beside images/ and labels/: the plain layout
        return _plain(p, _yaml_names(data, yamls[0]), f" in {yamls[0].name}")
    jsons = sorted((p / "annotations").glob("*.json")) or sorted(p.glob("*.json"))
    for q in jsons:  # the COCO reader opens them: a FIFO would block it for ever
        if kind := file_kind(q):
            raise DataError(f"{q} is {kind}, not a regular file: expected a COCO json file")
    if jsons:
        return _checked(coco_splits(jsons), jsons[0].parent, _COCO_HINT)
    if (p / "images").is_dir() and (p / "classes.txt").is_file():
        return _plain(p, read_class_names(p / "classes.txt"), " in classes.txt")
    raise DataError(f"{p}: not a detection dataset: expected {_LAYOUTS}")
