"""The captioning task: a whole run on the tiny shapes (it must beat the prior caption and
leave its pictures), the encoder's freezing and its starting weights, the baselines, the
predictor and the command line, the original-Flickr8k reader, and the released weights on
real Flickr8k images."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

import taskzoo
from taskzoo.errors import ConfigError, DataError, InputError, UnknownNameError


@pytest.fixture(scope="module")
def shapes_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cap") / "run"
    return taskzoo.run("captioning", dataset="shapes", epochs=6, out=out, progress=False)


def test_shapes_run_beats_the_prior_and_leaves_its_pictures(shapes_run):
    m = shapes_run.metrics
    assert m["test/bleu4"] > m["test/bleu4_prior"] + 0.1
    assert m["test/cider"] > m["test/cider_prior"] + 0.5
    for key in ("test/bleu1", "test/bleu4_nn", "test/cider_nn", "dev/bleu4_greedy",
                "baseline/nn_k"):
        assert key in m
    run = shapes_run.run_dir
    for name in ("attention_test.png", "captions_test.png", "captions_test.tsv",
                 "training_curves.png", "best.safetensors"):
        assert (run / name).is_file(), name
    assert Image.open(run / "attention_test.png").size[0] > 400
    rows = (run / "captions_test.tsv").read_text().splitlines()
    assert len(rows) == 41 and rows[0].startswith("image\tgenerated")


def test_predictor_captions_and_attention(shapes_run):
    from taskzoo.data.caption_shapes import caption_shapes

    pred = taskzoo.load_run(shapes_run.run_dir, device="cpu")
    data = caption_shapes(6, seed=123)
    outs = pred(data.arrays)
    assert len(outs) == 6 and all(o["caption"] for o in outs)
    vocab = set(pred.vocab.itos)
    assert all(set(o["caption"].split()) <= vocab for o in outs)
    # colours are what the network reads best: most captions name a colour of their image
    named = sum(any(c in o["caption"] for c, _, _ in objs) for o, objs in zip(outs, data.objects))
    assert named >= 4
    one = pred(data.arrays[0], beam=1, attention=True)
    h, w = one["grid"]
    assert len(one["attention"]) >= len(one["caption"].split())
    assert all(abs(sum(a) - 1) < 0.03 and len(a) == h * w for a in one["attention"])
    with pytest.raises(InputError, match="beam"):
        pred(data.arrays[0], beam=0)
    with pytest.raises(InputError, match="unknown option"):
        pred(data.arrays[0], temperature=2)


def test_cli_predict_saves_the_attention_figure(shapes_run, tmp_path):
    Image.fromarray(np.full((50, 80, 3), 200, np.uint8)).save(tmp_path / "grey.jpg")
    out = subprocess.run([sys.executable, "-m", "taskzoo.cli", "predict", "captioning",
                          str(tmp_path / "grey.jpg"), "--from", str(shapes_run.run_dir),
                          "--save", str(tmp_path / "saved"), "--device", "cpu"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "grey.jpg" in out.stdout
    assert list((tmp_path / "saved").glob("*.png"))


def _encoder_state(model):
    return {k: v.clone() for k, v in model.encoder.state_dict().items()}


class _Watch:
    """Records whether the encoder still holds its starting weights after each step."""

    def __init__(self):
        self.start, self.same = None, []

    def on_step_end(self, trainer, state):
        net = trainer.runtime.unwrap(trainer.model)
        now = net.encoder.state_dict()
        if self.start is None:
            self.start = {k: v.clone() for k, v in now.items()}
        self.same.append((state.epoch, all(torch.equal(now[k], v) for k, v in self.start.items()
                                           if v.is_floating_point())))

    def on_eval_end(self, trainer, state, metrics):
        pass


def test_encoder_init_fills_the_encoder_and_freezing_keeps_it(tmp_path):
    from taskzoo import weights

    coco = weights.read_weights(weights.weights_file(weights.resolve("fastestdet.coco")))
    common = dict(dataset="shapes", encoder="fastestdet", encoder_init="fastestdet.coco",
                  image_size=64, level=-1, epochs=2, baselines=False, progress=False)
    frozen = taskzoo.run("captioning", freeze_encoder=-1, out=tmp_path / "frozen", **common)
    enc = frozen.model.encoder.state_dict()
    assert all(torch.equal(enc[k], coco[k]) for k in enc)  # frozen: the detector's backbone
    record = json.loads((tmp_path / "frozen" / "encoder_init.json").read_text())
    assert record["tensors_loaded"] == len(enc)
    assert any(k.startswith("detect_head.") for k in record["ignored"])
    watch = _Watch()
    taskzoo.run("captioning", freeze_encoder=1, out=tmp_path / "after1", callbacks=[watch],
                **common)
    # steps of epoch 0 leave the encoder alone (their maps are cached); epoch 1 trains it
    assert all(same for epoch, same in watch.same if epoch == 0)
    assert not watch.same[-1][1]


def test_encoder_init_errors(tmp_path):
    with pytest.raises(ConfigError, match="set encoder=fastestdet"):
        taskzoo.run("captioning", dataset="shapes", encoder="cnn_small",
                    encoder_init="fastestdet.coco", out=tmp_path / "a")
    with pytest.raises(UnknownNameError, match="fastestdet.coco"):
        taskzoo.run("captioning", dataset="shapes", encoder="fastestdet",
                    encoder_init="fastestdet.cocoo", out=tmp_path / "b")
    with pytest.raises(ConfigError, match="freeze_encoder"):
        taskzoo.run("captioning", dataset="shapes", encoder_init="none", freeze_encoder=-1,
                    out=tmp_path / "c")


def test_encoder_init_from_an_image_classification_run_reads_its_normalisation(tmp_path):
    """A run directory of another task: its network (a 1-channel digits CNN here) is
    refused for RGB captioning, naming why."""
    clf = taskzoo.run("image_classification", dataset="digits", model="cnn_small", epochs=1,
                      out=tmp_path / "clf", progress=False)
    with pytest.raises(ConfigError, match="RGB"):
        taskzoo.run("captioning", dataset="shapes", encoder="cnn_small",
                    encoder_init=str(clf.run_dir), out=tmp_path / "cap")


def test_nearest_neighbour_baseline_returns_the_consensus_of_the_neighbours():
    from taskzoo.tasks.captioning.baselines import NearestNeighbourCaptioner, prior_caption

    vecs = np.eye(3, dtype=np.float32)
    caps = [["a dog runs on grass", "a dog runs on the grass", "a dog on grass", "dog", "sky"],
            ["two men talk at a table", "two men talk at a table", "two men talk at a desk",
             "a dog", "the sky"],
            ["a red car on a road", "a red car on the road", "red car on a road", "a", "tree"]]
    nn_cap = NearestNeighbourCaptioner(vecs, caps)
    query = np.array([[0.1, 0.9, 0.0], [0.0, 0.1, 0.95]], np.float32)
    assert nn_cap(query, k=1) == ["two men talk at a table", "a red car on a road"]
    # with every image as a neighbour, the consensus of all 15 captions
    assert nn_cap(query, k=3)[0] == nn_cap(query, k=3)[1]
    assert prior_caption([["a b", "c"], ["a b"]]) == "a b"


def _original_flickr(root, *, zipped=False):
    names = [f"{i}_img.jpg" for i in range(6)]
    tokens = "".join(f"{n}#{j}\tA caption {j} of picture {i} .\n"
                     for i, n in enumerate(names) for j in range(5))
    texts = {"Flickr8k.token.txt": tokens,
             "Flickr_8k.trainImages.txt": "\n".join(names[:2]) + "\n",
             "Flickr_8k.devImages.txt": "\n".join(names[2:4]) + "\n",
             "Flickr_8k.testImages.txt": "\n".join(names[4:]) + "\n"}
    rng = np.random.default_rng(0)
    images = {}
    for n in names:
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 255, (300, 500, 3), dtype=np.uint8)).save(buf, "JPEG")
        images[n] = buf.getvalue()
    root.mkdir()
    if zipped:
        with zipfile.ZipFile(root / "Flickr8k_Dataset.zip", "w") as z:
            for n, b in images.items():
                z.writestr(f"Flicker8k_Dataset/{n}", b)
        with zipfile.ZipFile(root / "Flickr8k_text.zip", "w") as z:
            for n, t in texts.items():
                z.writestr(n, t)
    else:
        (root / "Flicker8k_Dataset").mkdir()
        (root / "text").mkdir()
        for n, b in images.items():
            (root / "Flicker8k_Dataset" / n).write_bytes(b)
        for n, t in texts.items():
            (root / "text" / n).write_text(t)
    return names


@pytest.mark.parametrize("zipped", [False, True])
def test_original_flickr8k_copy_is_read_and_squashed(tmp_path, zipped):
    from taskzoo.data.flickr8k import load_flickr8k_original

    names = _original_flickr(tmp_path / "f", zipped=zipped)
    got = load_flickr8k_original(tmp_path / "f")
    assert got["train"].names == names[:2] and got["test"].names == names[4:]
    assert got["dev"].images.arrays.shape == (2, 128, 128, 3)
    assert got["dev"].captions[0][3] == "A caption 3 of picture 2 ."
    (tmp_path / "f" / ("Flickr8k_text.zip" if zipped else "text/Flickr_8k.devImages.txt")).unlink()
    with pytest.raises(DataError, match=r"Flickr_8k\.devImages\.txt.* not found"):
        load_flickr8k_original(tmp_path / "f")


def test_released_weights_caption_real_flickr8k_images(shared_data, monkeypatch):
    """The default weights on 100 dev images of the mirror: better than the most common
    training caption by a wide margin, in about a second."""
    from taskzoo.data.captions import caption_scores
    from taskzoo.data.flickr8k import load_flickr8k
    from taskzoo.weights import resolve

    monkeypatch.setenv("TASKZOO_MIRROR", str(shared_data))
    card = resolve("captioning")
    assert card.default and "MB" in card.notes
    dev = load_flickr8k("dev")
    cap = taskzoo.load("captioning", device="cpu")
    hyps = [o["caption"] for o in cap([str(p) for p in dev.images.paths[:100]])]
    s = caption_scores(dev.captions[:100], hyps)
    prior = caption_scores(dev.captions[:100], ["a dog runs through the grass"] * 100)
    assert s["bleu4"] > 2 * prior["bleu4"] and s["cider"] > 3 * prior["cider"]
    assert len(set(hyps)) > 30  # not one caption for everything
    assert json.loads(json.dumps(cap(str(dev.images.paths[0]), attention=True)))["attention"]
