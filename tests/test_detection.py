"""The detection task: the FastestDet port and its released weights, training on the tiny
shapes and on a user's YOLO folder, the predictor (images, thresholds, drawing) and the
video path from the command line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import taskzoo
from taskzoo.errors import ConfigError, InputError


@pytest.fixture
def mirror(shared_data, monkeypatch):
    monkeypatch.setenv("TASKZOO_MIRROR", str(shared_data))
    return shared_data


def test_released_fastestdet_coco_is_the_published_weights_value_for_value(mirror):
    from safetensors.torch import load_file

    from taskzoo import weights
    from taskzoo.weights import thirdparty as pretrained

    card = weights.resolve("detection")
    assert card.name == "fastestdet.coco" and card.default and card.dtype == "float32"
    assert "BSD-3-Clause" in card.extra["source"]["license"]
    ours = load_file(str(weights.weights_file(card)))
    theirs = pretrained.fastestdet_coco_state()
    assert set(ours) == set(theirs)
    for k, v in theirs.items():
        assert torch.equal(ours[k], v.to(ours[k].dtype)), k
    # strictly into the architecture, and the upstream backbone file into its trunk
    from taskzoo.models import build

    net = build("fastestdet", num_classes=80)
    net.load_state_dict(theirs, strict=True)
    net.backbone.load_state_dict(pretrained.shufflenetv2_state(), strict=True)
    # pretrained_backbone=true: a fresh FastestDet on upstream's ShuffleNetV2 weights
    from taskzoo.api import make_config
    from taskzoo.tasks import get_task

    task_cls = get_task("detection")
    task = task_cls(make_config(task_cls, {"dataset": "shapes", "pretrained_backbone": True}))
    model = task.build_model(task.build_data())
    backbone = pretrained.shufflenetv2_state()
    assert all(torch.equal(model.backbone.state_dict()[k], v) for k, v in backbone.items())
    with pytest.raises(ConfigError, match="model=fastestdet"):
        task_cls(make_config(task_cls, {"dataset": "shapes", "model": "yolo_tiny",
                                        "pretrained_backbone": True})).build_model(
            task.build_data())


def test_zero_shot_pennfudan_matches_the_original_code(mirror):
    """Calibrated with dog-qiuqiu/FastestDet's own code: map50 0.942, map 0.646 (+-0.01)."""
    from taskzoo.api import make_config
    from taskzoo.runtime import Runtime
    from taskzoo.tasks import get_task
    from taskzoo.weights import init_tensors, load_into

    task_cls = get_task("detection")
    cfg = make_config(task_cls, {"dataset": "pennfudan"})
    assert cfg.init == "fastestdet.coco" and cfg.model == "fastestdet"
    task = task_cls(cfg, Runtime.create(device="cpu", precision="32", channels_last=True))
    card, tensors = init_tensors(cfg.init, "detection")
    data = task.build_data(card.data)
    assert len(data.labels) == 80 and data.label_map == [0]  # "person" inside COCO's labels
    assert {k: len(v) for k, v in data.splits.items()} == {"dev": 20, "test": 50}
    assert len(data.train) == 100
    model = task.build_model(data)
    load_into(model, tensors, source=card.name)
    model = task.runtime.place(model).eval()
    with torch.inference_mode():
        m = task.evaluate(model, data, "test")
    assert m["test/map50"] == pytest.approx(0.942, abs=0.01)
    assert m["test/map"] == pytest.approx(0.646, abs=0.01)


def test_init_none_and_another_model_start_from_fresh_weights():
    from taskzoo.api import make_config
    from taskzoo.config import init_spec
    from taskzoo.tasks import get_task

    task_cls = get_task("detect")
    assert init_spec(make_config(task_cls, {"init": "none"}).init) == ""
    assert make_config(task_cls, {"model": "yolo_tiny"}).init == ""
    assert make_config(task_cls, {}).init == "fastestdet.coco"
    with pytest.raises(ConfigError, match="multiple of 32"):
        task_cls(make_config(task_cls, {"dataset": "shapes", "image_size": 100})).build_data()


@pytest.mark.parametrize("model", ["fastestdet", "yolo_tiny"])
def test_shapes_train_report_and_predict(tmp_path, model):
    result = taskzoo.run("detection", dataset="shapes", model=model, epochs=1, max_steps=6,
                         eval_every=3, out=tmp_path / "run", progress=False)
    m = result.metrics
    for key in ("dev/map", "dev/map50", "test/map", "test/map50", "test/map_small"):
        assert key in m and -1.0 <= m[key] <= 1.0
    run = tmp_path / "run"
    for name in ("boxes_test.png", "pr_curve_test.png", "ap_per_class_test.tsv",
                 "training_curves.png", "best.safetensors"):
        assert (run / name).is_file(), name
    table = (run / "ap_per_class_test.tsv").read_text().splitlines()
    assert table[1].startswith("class\tAP") and len(table) == 2 + 3  # square, disc, bar
    with Image.open(run / "boxes_test.png") as im:
        assert im.size[0] > 300
    det = taskzoo.load_run(run, device="cpu", conf=0.0)
    img = np.zeros((96, 128, 3), np.uint8)
    out = det(img, max_det=5)
    assert set(out) == {"boxes", "labels", "scores"} and len(out["boxes"]) <= 5
    assert all(0 <= b[0] <= b[2] <= 128 and 0 <= b[1] <= b[3] <= 96 for b in out["boxes"])
    assert set(out["labels"]) <= {"square", "disc", "bar"}


def _write_yolo_folder(root: Path) -> Path:
    from taskzoo.data.detection.aug import ShapesSet

    shapes = ShapesSet(24, seed=3)
    for split, idx in (("train", range(0, 16)), ("val", range(16, 24))):
        (root / "images" / split).mkdir(parents=True)
        (root / "labels" / split).mkdir(parents=True)
        for i in idx:
            shapes.image(i).save(root / "images" / split / f"{i}.png")
            h, w = shapes.arrays[i].shape[:2]
            lines = [f"{c} {(b[0] + b[2]) / 2 / w:.5f} {(b[1] + b[3]) / 2 / h:.5f} "
                     f"{(b[2] - b[0]) / w:.5f} {(b[3] - b[1]) / h:.5f}"
                     for b, c in zip(shapes.boxes[i], shapes.labels[i])]
            (root / "labels" / split / f"{i}.txt").write_text("\n".join(lines) + "\n")
    (root / "data.yaml").write_text("path: .\ntrain: images/train\nval: images/val\n"
                                    "names: [square, disc, bar]\n")
    return root / "data.yaml"


def test_a_users_yolo_folder_trains_and_bad_labels_name_file_and_line(tmp_path):
    from taskzoo.errors import InitWarning

    yaml_path = _write_yolo_folder(tmp_path / "set")
    # fine-tuned from the COCO weights: square, disc and bar are not COCO classes, so the
    # class layer is new (and said so); the rest starts from COCO
    with pytest.warns(InitWarning, match="cls_layers"):
        result = taskzoo.run("detection", data=str(yaml_path), image_size=128, max_steps=2,
                             out=tmp_path / "run", progress=False)
    assert result.config.dataset == "folder" and result.config.init == "fastestdet.coco"
    assert "dev/map" in result.metrics and "test/map" not in result.metrics  # val is dev
    assert json.loads((tmp_path / "run" / "data.json").read_text())["labels"] == \
        ["square", "disc", "bar"]
    (tmp_path / "set" / "labels" / "train" / "3.txt").write_text("7 0.5 0.5 0.2 0.2\n")
    from taskzoo.errors import DataError

    with pytest.raises(DataError, match=r"3\.txt:1"):
        taskzoo.run("detection", data=str(yaml_path), max_steps=1, out=tmp_path / "run2",
                    progress=False)


def test_predictor_thresholds_drawing_and_errors(mirror, tmp_path):
    det = taskzoo.load("detection", device="cpu")
    img = mirror / "PennFudanPed" / "PNGImages" / "FudanPed00001.png"
    out = det(str(img))
    assert "person" in out["labels"] and min(out["scores"]) >= 0.25
    w, h = Image.open(img).size
    assert all(0 <= b[0] < b[2] <= w and 0 <= b[1] < b[3] <= h for b in out["boxes"])
    loose, strict = det(str(img), conf=0.05), det(str(img), conf=0.6)
    assert len(loose["boxes"]) >= len(out["boxes"]) >= len(strict["boxes"])
    assert taskzoo.load("detection", device="cpu", conf=0.6)(str(img)) == strict
    with pytest.raises(InputError, match="conf=1.5"):
        det(str(img), conf=1.5)
    with pytest.raises(InputError, match="unknown option"):
        det(str(img), beam=3)
    with pytest.raises(InputError, match="no such file"):
        det(str(tmp_path / "nope.jpg"))
    saved = det.save(out, tmp_path / "drawn")
    with Image.open(saved) as im:
        assert im.size == (w, h) and saved.suffix == ".png"


def test_predict_cli_images_and_a_video_with_tracks(mirror, tmp_path, cli_env):
    import av

    img = mirror / "PennFudanPed" / "PNGImages" / "PennPed00010.png"
    env = {**cli_env, "TASKZOO_OFFLINE": "1"}  # the default weights ship with the package
    proc = subprocess.run([sys.executable, "-m", "taskzoo.cli", "predict", "detection", str(img),
                           "--save", str(tmp_path / "out"), "--conf", "0.4", "--json"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    row = json.loads(proc.stdout.splitlines()[0])
    assert "person" in row["labels"] and min(row["scores"]) >= 0.4
    assert Path(row["saved"]).is_file()
    bad = subprocess.run([sys.executable, "-m", "taskzoo.cli", "predict", "detection", str(img),
                          "--top-k", "2"], env=env, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "top-k" in bad.stderr and "Traceback" not in bad.stderr

    # 12 frames of the real clip, from the middle where a person stands in the room
    clip = tmp_path / "clip.mp4"
    with av.open(str(mirror / "videos" / "one-by-one-person-detection.mp4")) as src, \
            av.open(str(clip), "w") as dst:
        stream = dst.add_stream("libx264" if "libx264" in av.codecs_available else "mpeg4",
                                rate=10)
        stream.width, stream.height, stream.pix_fmt = 768, 432, "yuv420p"
        for i, frame in enumerate(src.decode(video=0)):
            if i >= 262:
                for packet in stream.encode(av.VideoFrame.from_ndarray(
                        frame.to_ndarray(format="rgb24"), format="rgb24")):
                    dst.mux(packet)
            if i >= 273:
                break
        for packet in stream.encode():
            dst.mux(packet)
    proc = subprocess.run([sys.executable, "-m", "taskzoo.cli", "predict", "detection", str(clip),
                           "--save", str(tmp_path / "tracked.mp4")],
                          env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    assert "12 frames" in proc.stdout and "fps" in proc.stdout
    rows = [json.loads(x) for x in (tmp_path / "tracked.jsonl").read_text().splitlines()]
    assert [r["frame"] for r in rows] == list(range(12))
    people = [r for r in rows if "person" in r["labels"]]
    assert len(people) >= 8  # someone is in the room throughout these frames
    ids = {t for r in people for t, lab in zip(r["track_ids"], r["labels"]) if lab == "person"}
    assert 1 <= len(ids) <= 3  # one person, not a new id per frame
    with av.open(str(tmp_path / "tracked.mp4")) as out:
        assert sum(1 for _ in out.decode(video=0)) == 12


def _tiny_clip(path: Path, frames: int = 3) -> bytes:
    """A few-frame MPEG-4 clip of a square moving right; returns its bytes."""
    av = pytest.importorskip("av")
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as c:
        s = c.add_stream("mpeg4", rate=10)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        for i in range(frames):
            f = np.full((48, 64, 3), 30, np.uint8)
            f[10:26, 4 + 3 * i:20 + 3 * i] = 255
            c.mux(s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
        c.mux(s.encode())
    return path.read_bytes()


def test_a_video_saved_over_its_input_is_refused_and_same_names_get_unique_outputs(
        capsys, tmp_path, monkeypatch):
    """Issue 28, case 1: `clip.mp4 --save clip.mp4` and `--save .` replaced the video with
    its annotated copy, and `a/clip.mp4 b/clip.mp4 --save res` wrote both to res/clip.mp4."""
    pytest.importorskip("supervision")
    from taskzoo.cli import main

    monkeypatch.setenv("TASKZOO_OFFLINE", "1")  # the default weights ship with the package
    monkeypatch.chdir(tmp_path)
    clip = _tiny_clip(tmp_path / "clip.mp4")
    for save in ["clip.mp4", ".", "./clip.mp4", str(tmp_path)]:
        assert main(["predict", "detection", "clip.mp4", "--save", save]) == 2, save
        err = capsys.readouterr().err
        assert "which is the input clip.mp4" in err and len(err.strip().splitlines()) == 1, err
    assert (tmp_path / "clip.mp4").read_bytes() == clip
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]  # no jsonl, no tmp

    a, b = _tiny_clip(tmp_path / "a" / "clip.mp4", 3), _tiny_clip(tmp_path / "b" / "clip.mp4", 4)
    assert main(["predict", "detection", "a/clip.mp4", "b/clip.mp4", "--save", "res"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("a/clip.mp4\t3 frames") and lines[0].endswith("-> res/clip.mp4")
    assert lines[1].startswith("b/clip.mp4\t4 frames") and lines[1].endswith("-> res/clip-2.mp4")
    assert sorted(p.name for p in (tmp_path / "res").iterdir()) == \
        ["clip-2.jsonl", "clip-2.mp4", "clip.jsonl", "clip.mp4"]
    assert len((tmp_path / "res" / "clip-2.jsonl").read_text().splitlines()) == 4
    assert main(["predict", "detection", "a/clip.mp4", "b/clip.mp4", "--save", "b"]) == 2
    assert "which is the input b/clip.mp4" in capsys.readouterr().err
    assert main(["predict", "detection", "a/clip.mp4", "b/clip.mp4", "--save", "x.mp4"]) == 2
    assert "one video file for 2 inputs" in capsys.readouterr().err
    assert (tmp_path / "a" / "clip.mp4").read_bytes() == a
    assert (tmp_path / "b" / "clip.mp4").read_bytes() == b
