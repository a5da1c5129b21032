"""Image classification end to end on the tiny digits, on a folder of the user's images, and
ORL face recognition with the eigenfaces references; exact resume with workers and
augmentation; init= from weights of another label set; the image predictor and CLI."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file
from test_trainer import KillAt, Killed, assert_same_weights  # the crash helpers

import taskzoo
from taskzoo.data.images import load_digits
from taskzoo.errors import DataError, InitWarning, InputError

FAST = dict(dataset="digits", epochs=4, device="cpu")


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "digits"
    return taskzoo.run("image_classification", out=out, progress=False, **FAST)


def test_digits_run_learns_and_writes_its_pictures(digits_run):
    m = digits_run.metrics
    assert m["test/accuracy"] >= 0.9 and m["dev/accuracy"] >= 0.9  # chance is 0.1
    assert 0 < m["test/macro_f1"] <= 1
    for name in ("training_curves.png", "confusion_test.png", "mistakes_test.png"):
        assert (digits_run.run_dir / name).read_bytes().startswith(b"\x89PNG"), name
    state = json.loads((digits_run.run_dir / "data.json").read_text())
    assert state["labels"] == [str(d) for d in range(10)] and state["size"] == [8, 8]
    assert state["channels"] == 1 and len(state["mean"]) == len(state["std"]) == 1


def test_predictor_agrees_with_the_reported_accuracy(digits_run, tmp_path):
    from taskzoo.api import make_config, resolve_task

    cls = resolve_task("image_classification")
    task = cls(make_config(cls, {k: v for k, v in FAST.items()}))
    data = task.build_data()
    test = data.splits["test"]
    arrays = [test[i][0][0].numpy() for i in range(len(test))]  # uint8 [8, 8] each
    out = digits_run.predictor(arrays)
    accuracy = np.mean([o["label"] == data.labels[y] for o, y in zip(out, test.labels())])
    assert accuracy == pytest.approx(digits_run.metrics["test/accuracy"])
    # PIL images, files and tensors give the same answers as arrays; a single input one dict
    Image.fromarray(arrays[0]).save(tmp_path / "a.png")
    assert digits_run.predictor(tmp_path / "a.png") == out[0]
    assert digits_run.predictor(Image.fromarray(arrays[1])) == out[1]
    assert digits_run.predictor(torch.from_numpy(arrays[2])[None]) == out[2]
    top = digits_run.predictor(arrays[0], top_k=3)
    assert len(top["top"]) == 3 and top["top"][0]["label"] == top["label"]
    assert top["top"][0]["score"] >= top["top"][1]["score"] >= top["top"][2]["score"]
    again = taskzoo.load_run(digits_run.run_dir, device="cpu")
    assert again(arrays[:20]) == out[:20]
    for bad, match in [([], "at least one"), (tmp_path / "nope.png", "no such file"),
                       ("text", "no such file"), (np.zeros((2, 2, 5)), "image 0"),
                       (3.5, "expected an image")]:
        with pytest.raises(InputError, match=match):
            digits_run.predictor(bad)


def test_cli_predicts_files_globs_and_folders(digits_run, tmp_path, cli_env):
    digits = load_digits()
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(digits.arrays[i]).save(folder / f"d{i}.png")
    cmd = [sys.executable, "-m", "taskzoo.cli", "predict", "image_classification",
           "--from", str(digits_run.run_dir)]
    proc = subprocess.run([*cmd, str(folder / "d0.png"), str(folder / "*.png"), str(folder),
                           "--json", "--top-k", "2"], env=cli_env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(rows) == 7 and [Path(r["input"]).name for r in rows[:4]] == [
        "d0.png", "d0.png", "d1.png", "d2.png"]
    assert all(len(r["top"]) == 2 for r in rows)
    proc = subprocess.run([*cmd, str(folder / "missing*.jpg")], env=cli_env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "matches no file" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_top_k_is_printed_and_a_negative_one_refused(tmp_path, monkeypatch, capsys):
    """issue 28 case 11: `--top-k 3` was dropped from the plain output (only the first class
    was printed) and `--top-k -1` was accepted."""
    from taskzoo.cli import main

    monkeypatch.setenv("TASKZOO_OFFLINE", "1")  # the released default weights, in the package
    image = tmp_path / "shoe.png"
    Image.fromarray(load_digits().arrays[0]).save(image)
    assert main(["predict", "image_classification", str(image), "--top-k", "3", "--json"]) == 0
    top = json.loads(capsys.readouterr().out)["top"]
    assert main(["predict", "image_classification", str(image), "--top-k", "3"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.split("\t")[3] == "top 3: " + "; ".join(f"{t['label']} {t['score']}" for t in top)
    for k in ("-1", "-3"):
        assert main(["predict", "image_classification", str(image), "--top-k", k]) == 2
        err = capsys.readouterr().err
        assert f"top_k={k}: expected a whole number >= 0" in err and err.count("\n") == 1, err
    with pytest.raises(InputError, match="top_k=-1"):
        taskzoo.load("image_classification", device="cpu")(image, top_k=-1)


def _write_folder(root: Path, classes: int = 3, per_class: int = 30) -> None:
    """A class-per-folder tree of digit PNGs, plus a corrupt file and a CMYK JPEG."""
    digits = load_digits()
    for c in range(classes):
        d = root / f"class_{c}"
        d.mkdir(parents=True)
        idx = np.flatnonzero(digits.labels == c)[:per_class]
        for k, i in enumerate(idx):
            Image.fromarray(digits.arrays[i]).resize((16, 16)).save(d / f"{k}.png")
    (root / "class_0" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    cmyk = Image.fromarray(digits.arrays[0]).resize((16, 16)).convert("CMYK")
    cmyk.save(root / "class_1" / "cmyk.jpg")


def test_a_folder_of_own_images_trains_and_predicts(tmp_path):
    _write_folder(tmp_path / "tree")
    res = taskzoo.run("image_classification", data=str(tmp_path / "tree"), image_size=16,
                      epochs=6, batch_size=16, warmup_steps=5, model="cnn_small", width=16,
                      device="cpu", out=tmp_path / "run", progress=False)
    assert res.config.dataset == "folder"  # implied by data=
    assert res.metrics["data/skipped_files"] == 1.0
    assert "broken.png" in (tmp_path / "run" / "skipped_files.txt").read_text()
    assert res.metrics["dev/accuracy"] >= 0.8  # three digit classes, chance 0.33
    state = json.loads((tmp_path / "run" / "data.json").read_text())
    assert state["channels"] == 3 and state["labels"] == ["class_0", "class_1", "class_2"]
    out = res.predictor(str(tmp_path / "tree" / "class_1" / "cmyk.jpg"))
    assert out["label"] in state["labels"]
    with pytest.raises(DataError, match="at least two|only one class|one class"):
        one = tmp_path / "one" / "only"
        one.mkdir(parents=True)
        Image.fromarray(load_digits().arrays[0]).save(one / "a.png")
        Image.fromarray(load_digits().arrays[1]).save(one / "b.png")
        taskzoo.run("image_classification", data=str(tmp_path / "one"), out=tmp_path / "x",
                    progress=False)


def test_init_from_weights_of_another_label_set_reinitialises_the_head(digits_run, tmp_path):
    from taskzoo.weights.export import export

    w, _ = export(digits_run.run_dir, out=tmp_path / "exp", dtype="float32", evaluate=False)
    _write_folder(tmp_path / "tree")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = taskzoo.run("image_classification", data=str(tmp_path / "tree"), init=str(w),
                          image_size=16, epochs=1, batch_size=16, device="cpu",
                          out=tmp_path / "ft", progress=False)
    messages = [str(c.message) for c in caught if issubclass(c.category, InitWarning)]
    assert len(messages) == 1 and "head.weight [10," in messages[0]
    assert "-> [3," in messages[0]
    record = json.loads((tmp_path / "ft" / "init.json").read_text())
    assert record["reinitialised"]["head.weight"][0][0] == 10
    assert res.config.model == "cnn_small"  # the architecture comes from the weights
    # the RGB folder meets a grey stem: its first conv is re-initialised and listed too
    assert any(len(a) == 4 and a[1] == 1 and b[1] == 3
               for a, b in record["reinitialised"].values())


def test_resume_with_workers_and_augmentation_is_exact(tmp_path):
    """Two loader processes, random crops: a crashed and resumed run ends with the weights of
    an unbroken one, and the number of workers changes nothing."""
    recipe = dict(FAST, epochs=3, eval_every=10, workers=2)
    full = taskzoo.run("image_classification", out=tmp_path / "full", progress=False, **recipe)
    with pytest.raises(Killed):
        taskzoo.run("image_classification", out=tmp_path / "cut", progress=False,
                    callbacks=[KillAt(37)], **recipe)
    taskzoo.run("image_classification", out=tmp_path / "cut", resume=True, progress=False,
                **recipe)
    assert_same_weights(tmp_path / "full" / "best.safetensors", tmp_path / "cut" / "best.safetensors")
    taskzoo.run("image_classification", out=tmp_path / "w0", progress=False,
                **dict(recipe, workers=0))
    assert_same_weights(tmp_path / "full" / "best.safetensors", tmp_path / "w0" / "best.safetensors")
    assert full.metrics["train/steps"] == 3 * 21


def test_orl_faces_with_the_eigenfaces_references(shared_data, monkeypatch, tmp_path):
    monkeypatch.setenv("TASKZOO_MIRROR", str(shared_data))
    res = taskzoo.run("image_classification", dataset="orl", epochs=2, model="cnn_small",
                      width=8, image_size=56, device="cpu", out=tmp_path / "orl", progress=False)
    m = res.metrics
    assert "dev/accuracy" not in m  # 5/5 per person leaves no dev split
    # the classical references on the same split: eigenfaces + 1-NN is about 0.94 here
    assert m["test/accuracy_eigenfaces_1nn"] >= 0.85 and m["test/accuracy_eigenfaces_svm"] >= 0.85
    weights = load_file(str(tmp_path / "orl" / "best.safetensors"))
    assert weights["head.weight"].shape[0] == 40


FASHION_DEBIAN = Path("/usr/share/datasets/fashion-mnist")


@pytest.mark.skipif(not FASHION_DEBIAN.is_dir(),
                    reason="needs Debian's dataset-fashion-mnist package (.ci/run installs it)")
def test_default_weights_reproduce_their_card_offline(monkeypatch, tmp_path, cli_env):
    from taskzoo import weights
    from taskzoo.data.images import load_fashion_mnist

    monkeypatch.setenv("TASKZOO_OFFLINE", "1")  # the Debian folder is a local source
    clf = taskzoo.load("image_classification", device="cpu")
    card = weights.resolve("image_classification")
    test = load_fashion_mnist("test")
    out = clf(list(test.arrays))
    accuracy = np.mean([o["label"] == test.classes[y] for o, y in zip(out, test.labels)])
    assert accuracy == pytest.approx(card.metrics["test/accuracy"], abs=0.002)
    files = [tmp_path / "a.png", tmp_path / "b.jpg"]  # the issue's `predict a.png b.jpg`
    for i, f in enumerate(files):
        Image.fromarray(test.arrays[i]).save(f)
    proc = subprocess.run([sys.executable, "-m", "taskzoo.cli", "predict", "image_classification",
                           *map(str, files)],
                          env={**cli_env, "TASKZOO_OFFLINE": "1"}, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    labels = [line.split("\t")[0] for line in proc.stdout.splitlines()]
    assert labels == [o["label"] for o in clf([str(f) for f in files])]  # what the API reads
    assert labels[0] == out[0]["label"]  # PNG is lossless: the same as the array
