"""Issue 28, case 14 and part of 6: a careless user's detection data. COCO json fields of
the wrong type (sizes written as strings, a bbox of strings, a missing file_name), a YOLO
data yaml without val, hostile YOLO label lines, and a FIFO where a json, yaml or label
file should be: each is read, or refused in one line naming the file and the entry (label
lines: file and line, gathered into one error); none is a traceback or a hang."""

from __future__ import annotations

import copy
import json
import os
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from taskzoo.data.detection.coco import load_coco_json
from taskzoo.data.detection.files import load_detection_data, load_yolo_yaml
from taskzoo.errors import DataError

pytestmark = pytest.mark.timeout(60)

HANG = 20.0  # seconds: a reader that takes longer has opened the FIFO and blocked


def _png(path: Path, size: tuple[int, int] = (96, 96)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, 128).save(path)
    return path


def _coco(root: Path, change: Callable[[dict[str, Any]], None] | None = None) -> Path:
    """images/x.png (96x96) and c.json with one box, `change`d first."""
    _png(root / "images" / "x.png")
    data = {"images": [{"id": 1, "file_name": "x.png", "width": 96, "height": 96}],
            "categories": [{"id": 1, "name": "a"}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 5, 5]}]}
    data = copy.deepcopy(data)
    if change:
        change(data)
    path = root / "c.json"
    path.write_text(json.dumps(data))
    return path


def _one_line_error(path: Path) -> str:
    with pytest.raises(DataError) as e:
        load_detection_data(path)
    msg = str(e.value)
    assert "\n" not in msg and str(path) in msg, msg
    return msg


# ---------------------------------------------------------------- case 14a: COCO json


def test_coco_sizes_written_as_strings_are_numbers(tmp_path):
    path = _coco(tmp_path, lambda d: d["images"][0].update(width="96", height=" 96 "))
    s = load_detection_data(path)["train"]  # was: "96x96 in the json but the file is 96x96"
    assert s.sizes == [(96, 96)] and s.boxes[0].tolist() == [[0, 0, 5, 5]]
    path = _coco(tmp_path, lambda d: d["images"][0].update(width=96.0, height="95"))
    with pytest.raises(DataError, match=r"image id 1 \(x.png\): 96x95 in the json but the "
                                        r"file is 96x96"):
        load_detection_data(path)


@pytest.mark.parametrize("value", [-5, 0, 9.5, "abc", "9.5", [96], True, {"w": 96}, "1" * 30])
def test_coco_size_that_is_not_a_positive_integer_names_file_entry_and_field(tmp_path, value):
    path = _coco(tmp_path, lambda d: d["images"][0].update(height=value))
    msg = _one_line_error(path)
    assert f"{path}: images[0] (id 1, x.png): height " in msg
    assert "is not a positive integer" in msg


@pytest.mark.parametrize(("change", "expected"), [
    (lambda d: d.update(images={"x.png": 1}), "expected a COCO json.*images: dict"),
    (lambda d: d.update(images=["x.png"]), r"images\[0\] is not an object: 'x.png'"),
    (lambda d: d["images"][0].pop("file_name"), r"images\[0\] \(id 1\): file_name None is "
                                                r"not a file name"),
    (lambda d: d["images"][0].update(file_name=7), r"images\[0\] \(id 1\): file_name 7"),
    (lambda d: d["images"][0].update(file_name=["x.png"]), r"file_name \['x.png'\] is not"),
    (lambda d: d["images"][0].update(file_name=""), r"file_name '' is not a file name"),
    (lambda d: d["images"][0].update(id=1.5), r"images\[0\]: id 1.5 is not an integer"),
    (lambda d: d["images"][0].pop("id"), r"images\[0\]: id None is not an integer"),
    (lambda d: d["images"].append(dict(d["images"][0])), r"images\[1\]: the id 1 is given "
                                                          r"to two images"),
    (lambda d: d.update(categories=["a"]), r"categories\[0\] is not an object"),
    (lambda d: d["categories"][0].update(name=None), r"categories\[0\] \(id 1\): name None"),
    (lambda d: d["categories"][0].update(name=["a"]), r"name \['a'\] is not a non-empty"),
    (lambda d: d["categories"][0].update(id="one"), r"categories\[0\]: id 'one' is not an "
                                                    r"integer"),
    (lambda d: d["categories"].append({"id": 2, "name": "a"}),
     "two categories are named 'a'"),
], ids=["images-dict", "image-str", "no-file_name", "file_name-int", "file_name-list",
        "file_name-empty", "id-float", "id-missing", "id-twice", "category-str",
        "name-none", "name-list", "category-id-str", "name-twice"])
def test_coco_malformed_entry_is_one_line_naming_file_and_entry(tmp_path, change, expected):
    msg = _one_line_error(_coco(tmp_path, change))
    assert re.search(expected, msg), msg


def test_coco_json_that_is_not_json_is_one_line(tmp_path):
    path = _coco(tmp_path)
    for raw, expected in ((b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
                          (b'{"images": "caf\xe9"}', r"not UTF-8 text \(byte 0xe9"),
                          (b"{'images': []}", "not valid JSON"),
                          (b"[1, 2]", "got a JSON list")):
        path.write_bytes(raw)
        assert re.search(expected, _one_line_error(path))


@pytest.mark.parametrize(("bbox", "expected"), [
    ([0, 0, 5], "bbox must be 4 finite numbers"),
    (["0", "0", "5", "5"], "bbox must be 4 finite numbers .* got \\['0'"),
    ([True, 0, 5, 5], "bbox must be 4 finite numbers"),
    ({"x": 0}, "bbox must be 4 finite numbers"),
    (None, "bbox must be 4 finite numbers .* got None"),
    ([0, 0, -5, 5], "box with a negative width or height \\[0, 0, -5, 5\\]"),
    ([0, 0, 0, 5], "zero-width or zero-height box"),
    ([0, 0, 1e308, 5], "box outside its image"),
    ([0] * 100_000, "got \\[0, 0, .*\\.\\.\\.$"),
])
def test_coco_bad_bbox_is_reported_by_file_and_annotation(tmp_path, bbox, expected):
    path = _coco(tmp_path, lambda d: d["annotations"][0].update(bbox=bbox))
    with pytest.raises(DataError) as e:
        load_detection_data(path)
    lines = str(e.value).splitlines()
    assert lines[0] == f"1 label problem in {path}:" and len(lines) == 2
    assert lines[1].startswith("  c.json: annotations[0] (id 1): ")
    assert re.search(expected, lines[1]) and len(lines[1]) < 300, lines[1]


def test_coco_unknown_ids_and_iscrowd_written_as_text(tmp_path):
    path = _coco(tmp_path, lambda d: d["annotations"][0].update(iscrowd="0"))
    assert load_detection_data(path)["train"].num_boxes == 1  # "0" is not a crowd region
    path = _coco(tmp_path, lambda d: d["annotations"][0].update(iscrowd=1.0))
    with pytest.raises(DataError, match="have no boxes"):  # the only box is a crowd region
        load_detection_data(path)
    for change, expected in (
            ({"iscrowd": [0]}, r"iscrowd must be 0 or 1, got \[0\]"),
            ({"iscrowd": 2}, "iscrowd must be 0 or 1, got 2"),
            ({"category_id": 99}, "category_id 99 is not in categories"),
            ({"category_id": [1]}, r"category_id \[1\] is not in categories"),
            ({"image_id": "x" * 500}, "image_id 'xxx.*\\.\\.\\. is not in images")):
        path = _coco(tmp_path, lambda d, c=change: d["annotations"][0].update(c))
        with pytest.raises(DataError) as e:
            load_detection_data(path)
        assert re.search(f"c.json: annotations\\[0\\] \\(id 1\\): {expected}", str(e.value))
    path = _coco(tmp_path, lambda d: d["annotations"][0].update(image_id="1", category_id=1.0))
    assert load_detection_data(path)["train"].num_boxes == 1  # ids written as "1" or 1.0


# ---------------------------------------------------------------- case 14b: YOLO without val


def _yolo(root: Path, n: int, yaml: str = "train: images/train\nnames: [a, b]\n") -> Path:
    for i in range(n):
        _png(root / "images" / "train" / f"{i}.png", (64, 48))
        label = root / "labels" / "train" / f"{i}.txt"
        label.parent.mkdir(parents=True, exist_ok=True)
        label.write_text(f"{i % 2} 0.5 0.5 0.5 0.5\n")
    path = root / "data.yaml"
    path.write_text(yaml)
    return path


def _detection_task(data: Path) -> Any:
    from taskzoo.api import make_config
    from taskzoo.tasks import get_task

    cls = get_task("detection")
    return cls(make_config(cls, {"dataset": "folder", "data": str(data), "image_size": 64,
                                 "init": "none"}))


def test_a_yolo_yaml_without_val_holds_out_dev_images_and_says_so(tmp_path, capsys):
    path = _yolo(tmp_path, 50)
    splits = load_detection_data(path)  # was: "no val: expected train and val"
    assert list(splits) == ["train"] and len(splits["train"]) == 50
    data = _detection_task(path).build_data()
    assert len(data.train) == 30 and len(data.splits["dev"]) == 20
    assert not set(data.train.index) & set(data.splits["dev"].index)
    err = capsys.readouterr().err
    assert "no val split: 20 of the 50 training images held out as dev (dev_images=20, " \
           "split_seed=0)" in err
    assert "held out as dev" in data.name
    again = _detection_task(path).build_data()
    assert again.splits["dev"].index == data.splits["dev"].index  # the same each run
    for n, dev in ((3, 1), (5, 2), (7, 3)):  # at most half of train
        few = _detection_task(_yolo(tmp_path / f"few{n}", n)).build_data()
        assert (len(few.train), len(few.splits["dev"])) == (n - dev, dev)


def test_a_yolo_yaml_without_val_and_too_few_images_is_one_line(tmp_path):
    path = _yolo(tmp_path, 2)
    with pytest.raises(DataError) as e:
        _detection_task(path).build_data()
    msg = str(e.value)
    assert "\n" not in msg and "no val split and only 2 readable training images" in msg
    assert "dev_images=0" in msg


def test_yolo_yaml_fields_of_the_wrong_type(tmp_path):
    path = _yolo(tmp_path, 2)
    path.write_text("train: images/train\nval: images/train\nnames: [a, b]\nnc: '2'\n")
    assert len(load_yolo_yaml(path)["val"]) == 2  # nc "2" is 2
    for yaml, expected in (
            ("train: images/train\nnames: [a, a]\n", "names: 'a' names two classes"),
            ("train: images/train\nnames: [null, b]\n", "names: class 0 is None, not a name"),
            ("train: images/train\nnames: [[a], b]\n", r"class 0 is \['a'\], not a name"),
            ("train: images/train\nnames: {true: a, false: b}\n", "the keys must be class"),
            ("train: images/train\nnames: [a, b]\nnc: [2]\n", r"nc is \[2\] but names"),
            ("train: [images/train\nnames: [a, b]\n", r"not valid YAML \(line \d+, column"),
            ("!!python/object:os.system {}\n", r"not valid YAML \(line 1, column 1\)"),
            ("val: images/train\nnames: [a, b]\n", "no train: expected train")):
        path.write_text(yaml)
        assert re.search(expected, _one_line_error(path))


# ---------------------------------------------------------------- YOLO label lines


@pytest.mark.parametrize(("line", "expected"), [
    (b"0 0.5 0.5 0.5 0.5\n\xff\xfe 1\n", "a.txt: the label file is not UTF-8 text \\(byte "
                                          "0xff at line 2, column 1\\)"),
    (b"0 nan 0.5 0.5 0.5\n", "a.txt:1: not a finite number"),
    (b"0 0.5 inf 0.5 0.5\n", "a.txt:1: not a finite number"),
    (b"0 0.5 0.5 1e400 0.5\n", "a.txt:1: not a finite number"),
    (b"2 0.5 0.5 0.5 0.5\n", "a.txt:1: class id 2 out of range: valid ids are 0..1"),
    (b"-1 0.5 0.5 0.5 0.5\n", "a.txt:1: class id -1 out of range"),
    (b"0.5 0.5 0.5 0.5 0.5\n", "a.txt:1: class id 0.5 out of range"),
    (b"0 0.5 0.5\n", "a.txt:1: expected 5 numbers .* got 3"),
    (b"0 0.5 0.5 0.5 0.5 0.1 0.2\n", "a.txt:1: expected 5 numbers .* got 7"),
    (b"0 x 0.5 0.5 0.5\n", "a.txt:1: not a number"),
    (b"\n\n0\x000.5 0.5 0.5 0.5\n", "a.txt:3: expected 5 numbers"),
    (b"0 0.5 0.5 0.5 0.5 " * 10_000, "a.txt:1: expected 5 numbers .* got 50000"),
])
def test_a_hostile_yolo_label_line_is_named_by_file_and_line(tmp_path, line, expected):
    path = _yolo(tmp_path, 2, "train: images/train\nval: images/train\nnames: [a, b]\n")
    (tmp_path / "labels" / "train" / "0.txt").unlink()
    (tmp_path / "labels" / "train" / "a.txt").write_bytes(line)
    _png(tmp_path / "images" / "train" / "a.png", (64, 48))
    with pytest.raises(DataError) as e:
        load_detection_data(path)
    lines = str(e.value).splitlines()
    # val is the same folder: each problem is listed once per split that holds the file
    assert lines[0] == f"2 label problems in {path}:" and len(lines) == 3
    assert re.search(expected, lines[1]) and len(lines[1]) < 400, lines[1]


# ---------------------------------------------------------------- case 6: FIFOs


def _bounded(fn: Callable[[], object], pipe: Path) -> BaseException | None:
    """Run `fn` in a thread; the error it raised (None if none). Fails when it takes more
    than HANG seconds: a reader blocked on the FIFO is then released by opening the FIFO
    for writing, so that a regression fails this test instead of hanging the suite."""
    got: list[BaseException | None] = []

    def target() -> None:
        try:
            fn()
            got.append(None)
        except BaseException as e:  # handed to the test, which asserts on it
            got.append(e)

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(HANG)
    hung = t.is_alive()
    while t.is_alive():  # unblock the reader: a writer opens and closes the FIFO
        try:
            os.close(os.open(pipe, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:
            pass
        t.join(0.1)
    assert not hung, f"reading {pipe} blocked for {HANG} s: it was opened"
    return got[0]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs os.mkfifo")
def test_readers_called_on_a_fifo_refuse_it_without_opening_it(tmp_path):
    from taskzoo.data.detection.files import read_class_names, read_yolo_labels
    from taskzoo.data.detection.labels import LabelProblems

    pipe = tmp_path / "pipe.json"
    os.mkfifo(pipe)
    e = _bounded(lambda: load_coco_json(pipe), pipe)
    assert isinstance(e, DataError) and "\n" not in str(e)
    assert f"the COCO json {pipe} is a FIFO (named pipe), not a regular file" in str(e)
    e = _bounded(lambda: load_yolo_yaml(pipe), pipe)
    assert isinstance(e, DataError) and f"{pipe} is a FIFO (named pipe)" in str(e)
    e = _bounded(lambda: read_class_names(pipe), pipe)
    assert isinstance(e, DataError) and f"{pipe} is a FIFO (named pipe)" in str(e)
    problems = LabelProblems()
    e = _bounded(lambda: read_yolo_labels(pipe, (64, 48), 2, problems), pipe)
    assert e is None and problems.items == [
        f"{pipe}: the label file is a FIFO (named pipe), not a regular file: expected a "
        f"UTF-8 text file of YOLO lines"]
    # a .txt list of training images that is a FIFO
    _png(tmp_path / "images" / "0.png")
    os.mkfifo(tmp_path / "train.txt")
    (tmp_path / "data.yaml").write_text("train: train.txt\nnames: [a]\n")
    e = _bounded(lambda: load_detection_data(tmp_path / "data.yaml"), tmp_path / "train.txt")
    assert isinstance(e, DataError) and "train.txt' ->" in str(e) and "FIFO" in str(e)

