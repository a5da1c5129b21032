"""Detection datasets: Penn-Fudan and coco128 through the hub (real data, skipped without
it), the Penn-Fudan split, and a user's YOLO / COCO / plain folders written here."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from taskzoo import hub
from taskzoo.data.detection import datasets as det
from taskzoo.data.detection.files import load_detection_data, yolo_label_path
from taskzoo.errors import DataError, OfflineError, UsageError


def _shared(shared_data: Path, group: str) -> Path:
    if not (shared_data / group).is_dir():
        pytest.skip(f"needs the real datasets: no {shared_data / group}")
    return shared_data


@pytest.fixture
def pennfudan_mirror(shared_data, monkeypatch) -> Path:
    monkeypatch.setenv("TASKZOO_MIRROR", str(_shared(shared_data, "PennFudanPed")))
    return shared_data


@pytest.fixture
def coco128_mirror(shared_data, monkeypatch) -> Path:
    monkeypatch.setenv("TASKZOO_MIRROR", str(_shared(shared_data, "coco128")))
    return shared_data


def _sums(shared_data: Path, group: str) -> dict[str, str]:
    out = {}
    for line in (shared_data / "SHA256SUMS").read_text().splitlines():
        digest, path = line.split("  ", 1)
        if path.startswith(f"{group}/"):
            out[path.removeprefix(f"{group}/")] = digest
    return out


def _assert_inside(s: det.DetectionSet) -> None:
    for b, (w, h) in zip(s.boxes, s.sizes, strict=True):
        assert b.dtype == np.float32 and b.shape[1] == 4
        assert (b[:, 0] >= 0).all() and (b[:, 1] >= 0).all()
        assert (b[:, 2] <= w).all() and (b[:, 3] <= h).all()
        assert (b[:, 0] < b[:, 2]).all() and (b[:, 1] < b[:, 3]).all()


# ---------------------------------------------------------------- Penn-Fudan


def test_pennfudan_manifest_matches_the_shared_checksums(shared_data):
    folder = det.pennfudan_folder()
    assert len(folder.manifest) == 512
    assert {r: d for r, d, _ in folder.manifest} == _sums(_shared(shared_data, "PennFudanPed"),
                                                          "PennFudanPed")
    assert folder.archives[0].urls == (det.PENNFUDAN_URL,) and folder.archives[0].sha256 == ""
    assert folder.archives[0].root is None


def test_pennfudan_through_the_hub(pennfudan_mirror):
    peds = det.load_pennfudan()
    assert (len(peds), peds.num_boxes, peds.classes) == (170, 423, ["person"])
    names = [p.name for p in peds.paths]
    assert names == sorted(names) and names[0] == "FudanPed00001.png"
    assert sum(n.startswith("PennPed") for n in names) == 96
    assert all(y.dtype == np.int64 and (y == 0).all() for y in peds.labels)
    _assert_inside(peds)
    # FudanPed00001.txt: (160, 182) - (302, 431), 1-based inclusive -> edges 159..302, 181..431
    assert peds.sizes[0] == (559, 536)
    assert peds.boxes[0].tolist() == [[159, 181, 302, 431], [419, 170, 535, 486]]
    img = peds.image(0)
    assert img.mode == "RGB" and img.size == peds.sizes[0]
    split = det.pennfudan_split(names)
    assert [len(split[k]) for k in ("train", "dev", "test")] == [100, 20, 50]
    assert sum(len(peds.subset(split[k])) for k in split) == 170


def test_pennfudan_split_protocol():
    names = [f"{p}Ped{i:05d}.png" for p, n in (("Fudan", 74), ("Penn", 96))
             for i in range(1, n + 1)]
    s = det.pennfudan_split(names[::-1])  # any order in: indices into the sorted names
    train, dev, test = (set(s[k]) for k in ("train", "dev", "test"))
    assert (len(train), len(dev), len(test)) == (100, 20, 50)
    assert not (train & dev or train & test or dev & test) and train | dev | test == set(range(170))
    assert all(s[k] == sorted(s[k]) for k in s)
    assert det.pennfudan_split(names) == s  # deterministic
    other = det.pennfudan_split(names, seed=1)
    assert other["test"] == s["test"] and other["dev"] != s["dev"]  # seed moves only dev
    assert set(other["dev"]) | set(other["train"]) == train | dev  # dev never from test
    assert len(det.pennfudan_split(names, dev=0)["train"]) == 120
    with pytest.raises(UsageError, match="170 distinct"):
        det.pennfudan_split(names[:100])
    with pytest.raises(UsageError, match="dev must be"):
        det.pennfudan_split(names, dev=120)


def test_pennfudan_annotation_errors_name_the_line(tmp_path):
    good = ('Image size (X x Y x C) : 10 x 8 x 3\nObjects with ground truth : 1 { "P" }\n'
            'Bounding box for object 1 "P" (Xmin, Ymin) - (Xmax, Ymax) : (1, 1) - (10, 8)\n')
    (tmp_path / "a.txt").write_text(good)
    size, boxes = det.read_pennfudan_annotation(tmp_path / "a.txt")
    assert size == (10, 8) and boxes.tolist() == [[0, 0, 10, 8]]  # the whole image
    (tmp_path / "b.txt").write_text(good.replace("(10, 8)\n", "(11, 8)\n"))
    with pytest.raises(DataError, match=r"b\.txt:3: box outside the 10x8 image"):
        det.read_pennfudan_annotation(tmp_path / "b.txt")
    (tmp_path / "c.txt").write_text(good.replace("ground truth : 1", "ground truth : 2"))
    with pytest.raises(DataError, match=r"c\.txt: expected .* \(2\), found 1"):
        det.read_pennfudan_annotation(tmp_path / "c.txt")


# ---------------------------------------------------------------- coco128


def test_coco128_manifest_matches_the_shared_checksums(shared_data):
    folder = det.coco128_folder()
    assert len(folder.manifest) == 256 and folder.archives == ()
    assert {r: d for r, d, _ in folder.manifest} == _sums(_shared(shared_data, "coco128"),
                                                          "coco128")


def test_coco128_through_the_hub(coco128_mirror):
    coco = det.load_coco128()
    assert (len(coco), coco.num_boxes, len(coco.classes)) == (128, 929, 80)
    assert coco.classes[:3] == ["person", "bicycle", "car"] and not coco.skipped
    empty = [p.name for p, b in zip(coco.paths, coco.boxes, strict=True) if not len(b)]
    assert empty == ["000000000250.jpg", "000000000508.jpg"]
    _assert_inside(coco)
    grey = [p.name for p in coco.paths].index("000000000086.jpg")
    assert coco.image(grey).mode == "RGB" and coco.image(grey).size == coco.sizes[grey]
    # the YOLO boxes of 000000000009.jpg against the COCO json's non-crowd boxes
    data = json.loads((det.coco128_root() / "annotations/instances_train2017.json").read_text())
    cat_ids = sorted(c["id"] for c in data["categories"])
    want = sorted((cat_ids.index(a["category_id"]), a["bbox"][0], a["bbox"][1],
                   a["bbox"][0] + a["bbox"][2], a["bbox"][1] + a["bbox"][3])
                  for a in data["annotations"] if a["image_id"] == 9 and not a["iscrowd"])
    assert coco.paths[0].name == "000000000009.jpg" and coco.sizes[0] == (640, 480)
    got = sorted((int(y), *b) for b, y in zip(coco.boxes[0], coco.labels[0], strict=True))
    assert len(got) == len(want) == 8
    assert all(g[0] == w[0] and np.allclose(g[1:], w[1:], atol=1.0)
               for g, w in zip(got, want, strict=True))


def test_coco128_read_as_user_data_agrees(coco128_mirror):
    yolo = det.load_coco128()
    splits = load_detection_data(det.coco128_root())  # annotations/*.json: COCO
    coco = splits["train"]
    assert list(splits) == ["train"] and coco.classes == yolo.classes
    assert [p.name for p in coco.paths] == [p.name for p in yolo.paths]
    assert coco.num_boxes == 929  # 939 annotations, 10 iscrowd left out
    for a, la, b, lb in zip(yolo.boxes, yolo.labels, coco.boxes, coco.labels, strict=True):
        assert sorted(la.tolist()) == sorted(lb.tolist())
        for box, y in zip(a, la, strict=True):  # each YOLO box has a COCO twin within 1 px
            assert (np.abs(b - box).max(1)[lb == y] <= 1.0).any()


def test_coco128_offline_error_says_where_to_put_it(monkeypatch, tmp_path):
    monkeypatch.setenv("TASKZOO_HOME", str(tmp_path / "empty_home"))
    monkeypatch.setenv("TASKZOO_OFFLINE", "1")
    with pytest.raises(OfflineError) as e:
        det.load_coco128()
    msg = str(e.value)
    assert "folder coco128/coco128 (256 files" in msg and "TASKZOO_MIRROR/coco128/" in msg
    assert str(hub.cached_folder(det.coco128_folder())) in msg and "re-encoded" in msg


# ---------------------------------------------------------------- a user's data


def _png(path: Path, size: tuple[int, int] = (40, 20), mode: str = "RGB") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, 128).save(path)
    return path


def _text(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _yolo(root: Path, labels: dict[str, str], names: str = "[cat, dog]") -> Path:
    """images/{train,val}/*.png (40x20) with labels/<same>.txt for each given text."""
    for rel in ("train/a.png", "train/b.png", "val/c.png"):
        _png(root / "images" / rel)
    for rel, text in labels.items():
        _text(root / "labels" / rel, text)
    return _text(root / "data.yaml", f"train: images/train\nval: images/val\nnames: {names}\n")


def test_yolo_yaml_layout(tmp_path):
    _yolo(tmp_path, {"train/a.txt": "1 0.5 0.5 0.5 0.5\n\n0 0.25 0.25 0.5 0.5\n",
                     "val/c.txt": "0 0.5 0.5 1 1\n"}, names="{0: cat, 1: dog}")
    for arg in (tmp_path, tmp_path / "data.yaml"):
        splits = load_detection_data(arg)
        assert list(splits) == ["train", "val"]
        train = splits["train"]
        assert train.classes == ["cat", "dog"] and [p.name for p in train.paths] == ["a.png",
                                                                                     "b.png"]
        assert train.sizes == [(40, 20), (40, 20)]
        assert train.boxes[0].tolist() == [[10, 5, 30, 15], [0, 0, 20, 10]]
        assert train.labels[0].tolist() == [1, 0] and train.labels[0].dtype == np.int64
        assert train.boxes[1].shape == (0, 4)  # no label file: no objects
        assert splits["val"].boxes[0].tolist() == [[0, 0, 40, 20]]
    assert yolo_label_path(tmp_path / "images/train/a.png") == tmp_path / "labels/train/a.txt"


def test_yolo_yaml_with_root_and_image_lists(tmp_path):
    data = tmp_path / "ds"
    _yolo(data, {"train/a.txt": "0 0.5 0.5 0.2 0.2\n"})
    _text(data / "train.txt", "./images/train/a.png\n./images/train/b.png\n")
    yaml = _text(tmp_path / "cfg" / "my.yaml", "path: ../ds\ntrain: train.txt\n"
                 "val: [images/val]\ntest: images/val\nnames: [cat, dog]\nnc: 2\n")
    splits = load_detection_data(yaml.parent)  # the folder's only yaml
    assert list(splits) == ["train", "val", "test"]
    assert len(splits["train"]) == 2 and splits["train"].num_boxes == 1
    assert splits["train"].boxes[0].tolist() == [[16, 8, 24, 12]]


def test_yolo_slightly_outside_is_clipped_and_corrupt_images_skipped(tmp_path):
    _yolo(tmp_path, {"train/a.txt": "0 0.5 0.5 1.01 1.01\n"})
    _text(tmp_path / "images/train/broken.png", "not a png")
    Image.new("RGB", (40, 20)).save(tmp_path / "trunc.png")
    raw = (tmp_path / "trunc.png").read_bytes()
    (tmp_path / "images/train/trunc.png").write_bytes(raw[: len(raw) // 2])
    train = load_detection_data(tmp_path)["train"]
    assert [p.name for p in train.paths] == ["a.png", "b.png"]
    assert train.boxes[0].tolist() == [[0, 0, 40, 20]]
    assert sorted(Path(p).name for p, _ in train.skipped) == ["broken.png", "trunc.png"]
    assert all(why for _, why in train.skipped)


def test_yolo_bad_labels_are_reported_by_file_and_line(tmp_path):
    _yolo(tmp_path, {"train/a.txt": "0 0.5 0.5 0.2 0.2\n2 0.5 0.5 0.2 0.2\n0 0.5 0.5 0.2\n",
                     "train/b.txt": "0 0.5 0.5 0 0.2\n0 x 0.5 0.2 0.2\n",
                     "val/c.txt": "1 0.9 0.5 0.5 0.2\n"})
    with pytest.raises(DataError) as e:
        load_detection_data(tmp_path)
    msg = str(e.value)
    assert msg.startswith("5 label problems in ")
    a, b, c = (str(tmp_path / "labels" / r) for r in ("train/a.txt", "train/b.txt", "val/c.txt"))
    assert f"{a}:2: class id 2 out of range: valid ids are 0..1 (2 names in data.yaml)" in msg
    assert f"{a}:3: expected 5 numbers" in msg
    assert f"{b}:1: zero-width or zero-height box" in msg
    assert f"{b}:2: not a number" in msg
    assert f"{c}:1: box outside its image" in msg


def test_many_bad_labels_are_counted(tmp_path):
    _yolo(tmp_path, {"train/a.txt": "5 0.5 0.5 0.2 0.2\n" * 13})
    with pytest.raises(DataError) as e:
        load_detection_data(tmp_path)
    assert str(e.value).startswith("13 label problems") and "... and 3 more" in str(e.value)
    assert str(e.value).count("out of range") == 10


def test_coco_json(tmp_path):
    _png(tmp_path / "images/x.png", (50, 40))
    _png(tmp_path / "images/sub/y.png", (30, 20), mode="L")
    data = {"images": [{"id": 7, "file_name": "sub/y.png", "width": 30, "height": 20},
                       {"id": 3, "file_name": "x.png", "width": 50, "height": 40}],
            "categories": [{"id": 9, "name": "dog"}, {"id": 2, "name": "cat"}],
            "annotations": [
                {"id": 1, "image_id": 3, "category_id": 9, "bbox": [10, 5, 20, 10], "iscrowd": 0},
                {"id": 2, "image_id": 3, "category_id": 2, "bbox": [0, 0, 50, 40], "iscrowd": 1},
                {"id": 3, "image_id": 7, "category_id": 2, "bbox": [-0.5, 1, 30.5, 19]}]}
    path = _text(tmp_path / "annotations/instances.json", json.dumps(data))
    for arg in (path, tmp_path):
        s = load_detection_data(arg)["train"]
        assert s.classes == ["cat", "dog"]  # category ids in ascending order
        assert [p.relative_to(tmp_path / "images").as_posix() for p in s.paths] == [
            "sub/y.png", "x.png"]  # sorted by file_name
        assert s.sizes == [(30, 20), (50, 40)]
        assert s.boxes[0].tolist() == [[0, 1, 30, 20]] and s.labels[0].tolist() == [0]
        assert s.boxes[1].tolist() == [[10, 5, 30, 15]] and s.labels[1].tolist() == [1]
        assert s.image(0).mode == "RGB"  # grey file, RGB out


def test_coco_bad_labels_and_missing_images(tmp_path):
    _png(tmp_path / "x.png", (50, 40))
    data = {"images": [{"id": 1, "file_name": "x.png"}], "categories": [{"id": 1, "name": "a"}],
            "annotations": [{"id": 10, "image_id": 1, "category_id": 1, "bbox": [40, 0, 20, 10]},
                            {"id": 11, "image_id": 1, "category_id": 4, "bbox": [0, 0, 5, 5]},
                            {"id": 12, "image_id": 1, "category_id": 1, "bbox": [0, 0, 0, 5]},
                            {"id": 13, "image_id": 2, "category_id": 1, "bbox": [0, 0, 5, 5]}]}
    path = _text(tmp_path / "coco.json", json.dumps(data))
    with pytest.raises(DataError) as e:
        load_detection_data(path)
    msg = str(e.value)
    assert msg.startswith("4 label problems")
    assert "coco.json: annotations[0] (id 10): box outside its image" in msg
    assert "annotations[1] (id 11): category_id 4 is not in categories" in msg
    assert "annotations[2] (id 12): zero-width or zero-height box" in msg
    assert "annotations[3] (id 13): image_id 2 is not in images" in msg
    data["images"][0]["file_name"] = "nowhere.png"
    _text(path, json.dumps(data))
    with pytest.raises(DataError, match="none of its 1 images were found .*'nowhere.png'"):
        load_detection_data(path)


def test_plain_folder_with_classes_txt(tmp_path):
    _png(tmp_path / "images/a.png")
    _text(tmp_path / "labels/a.txt", "0 0.5 0.5 0.5 0.5\n")
    _text(tmp_path / "classes.txt", "person\n\n")
    s = load_detection_data(tmp_path)
    assert list(s) == ["train"] and s["train"].classes == ["person"]
    assert s["train"].boxes[0].tolist() == [[10, 5, 30, 15]]


def test_user_data_errors(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_detection_data(tmp_path / "nope")
    with pytest.raises(DataError, match="not a detection dataset"):
        load_detection_data(tmp_path)
    yaml = _yolo(tmp_path, {"train/a.txt": "0 0.5 0.5 0.2 0.2\n"})
    _text(yaml, "train: images/train\nval: images/val\n")
    with pytest.raises(DataError, match="no 'names'"):
        load_detection_data(yaml)
    _text(yaml, "val: images/val\nnames: [a]\n")  # without val: the task holds out dev
    with pytest.raises(DataError, match="no train"):
        load_detection_data(yaml)
    _text(yaml, "train: images/train\nval: images/missing\nnames: [a]\n")
    with pytest.raises(DataError, match=r"val: 'images/missing' -> .* does not exist"):
        load_detection_data(yaml)
    _text(yaml, "train: images/train\nval: images/val\nnames: {0: a, 2: b}\n")
    with pytest.raises(DataError, match=r"need the ids 0..1"):
        load_detection_data(yaml)
    (tmp_path / "labels/train/a.txt").unlink()
    _text(yaml, "train: images/train\nval: images/val\nnames: [a]\n")
    with pytest.raises(DataError, match="have no boxes: expected YOLO label files such as"):
        load_detection_data(yaml)


def test_detection_set_validates():
    ok = dict(paths=[Path("a.png")], boxes=[[[0, 0, 4, 4]]], labels=[np.array([0])],
              classes=["a"], sizes=[(4, 4)])
    assert det.DetectionSet(**ok).boxes[0].dtype == np.float32
    for change, match in ((dict(sizes=[]), "one of each per image"),
                          (dict(boxes=[np.zeros((1, 3))]), r"\[N, 4\]"),
                          (dict(boxes=[[[0, 0, 5, 4]]]), "inside the 4x4 image"),
                          (dict(boxes=[[[2, 0, 2, 4]]]), "x1 < x2"),
                          (dict(labels=[np.array([1])]), "out of range"),
                          (dict(labels=[np.array([0.0])]), "must be integers")):
        with pytest.raises(DataError, match=match):
            det.DetectionSet(**{**ok, **change})


def test_coco_string_ids_size_mismatch_and_no_boxes(tmp_path):
    _png(tmp_path / "images/x.png", (50, 40))
    data = {"images": [{"id": 1, "file_name": "x.png", "width": 40, "height": 50}],
            "categories": [{"id": 1, "name": "a"}],
            "annotations": [{"id": 1, "image_id": "1", "category_id": "1", "bbox": [0, 0, 5, 5]}]}
    path = _text(tmp_path / "coco.json", json.dumps(data))
    with pytest.raises(DataError, match=r"image id 1 \(x.png\): 40x50 in the json but the file "
                                        r"is 50x40 \(upright, by its EXIF orientation\)"):
        load_detection_data(path)
    data["images"][0].update(width=50, height=40)
    _text(path, json.dumps(data))
    s = load_detection_data(path)["train"]  # "1" read as the id 1
    assert s.boxes[0].tolist() == [[0, 0, 5, 5]]
    assert s.subset(np.array([False])).paths == [] and len(s.subset(np.array([True]))) == 1
    data["annotations"] = []
    _text(path, json.dumps(data))
    with pytest.raises(DataError, match="have no boxes: expected annotations"):
        load_detection_data(path)


def test_coco_folder_of_split_jsons(tmp_path):
    _png(tmp_path / "images/train2017/a.png")
    _png(tmp_path / "images/val2017/b.png")
    for split, name in (("train", "a.png"), ("val", "b.png")):
        data = {"images": [{"id": 1, "file_name": name}],
                "categories": [{"id": 1, "name": "a"}, {"id": 5, "name": "b"}],
                "annotations": [{"id": 1, "image_id": 1, "category_id": 5, "bbox": [1, 2, 3, 4]}]}
        _text(tmp_path / f"annotations/instances_{split}2017.json", json.dumps(data))
    _text(tmp_path / "annotations/captions_train2017.json", "{}")  # not read
    splits = load_detection_data(tmp_path)
    assert list(splits) == ["train", "val"]
    assert splits["val"].paths == [tmp_path / "images/val2017/b.png"]
    assert splits["train"].labels[0].tolist() == [1] and splits["train"].classes == ["a", "b"]
    assert splits["train"].boxes[0].tolist() == [[1, 2, 4, 6]]
