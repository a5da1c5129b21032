"""MTCNN: the three networks key for key with facenet-pytorch's published weights, the cascade
on a real ORL face, `refine` on a given box, bad input, and (where facenet-pytorch is
importable) the same faces as the original code on 3 real photos.

The weights come from the facenet-pytorch 2.6.0 wheel: the file or unzipped folder named by
TASKZOO_FACENET_WHEEL (.ci/run downloads it), else the wheel in the mirror
(pretrained/facenet-pytorch/), else an importable facenet_pytorch package's own data folder;
without any, from the released `face_pipeline.widerface_dlib`, which holds them unchanged.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import REPO, SHARED_DATA
from PIL import Image

from taskzoo.errors import InputError
from taskzoo.models import build
from taskzoo.tasks.faces.mtcnn import detect, detect_batch, nms_min, refine, square

sys.path.insert(0, str(REPO / "benchmarks"))
from release_faces_mtcnn import WHEEL, mtcnn_state_from_wheel  # noqa: E402

PHOTOS = ["000000000036.jpg", "000000000110.jpg", "000000000308.jpg"]  # 1, 5 and 6 faces


def _wheel() -> Path | None:
    given = os.environ.get("TASKZOO_FACENET_WHEEL")
    candidates = [Path(given)] if given else []
    candidates.append(SHARED_DATA / "pretrained" / "facenet-pytorch" / WHEEL)
    spec = importlib.util.find_spec("facenet_pytorch")
    if spec is not None and spec.origin:
        candidates.append(Path(spec.origin).parents[1])  # the folder holding facenet_pytorch/
    return next((c for c in candidates if c.exists()), None)


@pytest.fixture(scope="module")
def net() -> torch.nn.Module:
    """MTCNN from the wheel when there is one, else from the released faces weights (which
    hold the same values in float32: tests/test_faces.py checks the file's dtypes)."""
    wheel = _wheel()
    model = build("mtcnn").eval()
    if wheel is None:
        from taskzoo.weights import read_weights, resolve, weights_file

        tensors = read_weights(weights_file(resolve("face_pipeline.widerface_dlib")))
        model.load_state_dict({k[len("mtcnn."):]: v.float() for k, v in tensors.items()
                               if k.startswith("mtcnn.")}, strict=True)
        return model
    model.load_state_dict(mtcnn_state_from_wheel(wheel), strict=True)
    return model


def _orl(shared_data: Path, name: str = "s1/1.pgm") -> torch.Tensor:
    path = shared_data / "att_faces" / name
    if not path.is_file():
        pytest.skip(f"needs the ORL faces at {path.parent.parent}")
    grey = torch.from_numpy(np.asarray(Image.open(path).convert("L")).copy())
    return grey.expand(3, -1, -1).contiguous()


def test_networks_return_the_upstream_outputs_and_keys():
    torch.manual_seed(0)
    both = build("mtcnn")
    reg, prob = build("mtcnn_pnet")(torch.randn(2, 3, 30, 40))
    assert reg.shape == (2, 4, 10, 15) and prob.shape == (2, 2, 10, 15)
    assert torch.allclose(prob.sum(1), torch.ones(2, 10, 15))
    reg, prob = build("mtcnn_rnet")(torch.randn(2, 3, 24, 24))
    assert reg.shape == (2, 4) and prob.shape == (2, 2)
    reg, marks, prob = build("mtcnn_onet")(torch.randn(2, 3, 48, 48))
    assert reg.shape == (2, 4) and marks.shape == (2, 10) and prob.shape == (2, 2)
    expected = {f"{part}.{key}" for part in ("pnet", "rnet", "onet")
                for key in build(f"mtcnn_{part}").state_dict()}
    assert set(both.state_dict()) == expected
    assert "onet.dense6_3.weight" in expected and "pnet.prelu1.weight" in expected


def test_published_weights_load_strictly_key_for_key(net):
    if _wheel() is None:
        pytest.skip(f"needs the facenet-pytorch wheel: set TASKZOO_FACENET_WHEEL to {WHEEL} "
                    "(pip download --no-deps facenet-pytorch==2.6.0) or its unzipped folder")
    state = mtcnn_state_from_wheel(_wheel())
    for part in ("pnet", "rnet", "onet"):
        own = {k[len(part) + 1:]: v for k, v in state.items() if k.startswith(part + ".")}
        single = build(f"mtcnn_{part}")
        assert set(single.state_dict()) == set(own)  # exactly the .pt file's keys
        single.load_state_dict(own, strict=True)
    assert torch.equal(net.onet.dense6_3.weight, state["onet.dense6_3.weight"])


def test_detect_finds_the_one_orl_face_with_ordered_landmarks(net, shared_data):
    image = _orl(shared_data)
    boxes, scores, marks = detect(net, image)
    assert boxes.shape == (1, 4) and scores.shape == (1,) and marks.shape == (1, 5, 2)
    assert scores[0] > 0.99
    x1, y1, x2, y2 = boxes[0].tolist()
    assert 0 < x2 - x1 < 92 and 0 < y2 - y1 < 112
    xs, ys = marks[0, :, 0], marks[0, :, 1]
    assert ((xs > x1) & (xs < x2) & (ys > y1) & (ys < y2)).all()
    eyes, nose, mouth = ys[:2].max(), ys[2], ys[3:].min()
    assert eyes < nose < mouth
    assert xs[0] < xs[1] and xs[3] < xs[4]  # "left" is the image's left


def test_batch_equals_one_image_at_a_time(net, shared_data):
    images = torch.stack([_orl(shared_data), _orl(shared_data, "s2/1.pgm")])
    batched = detect_batch(net, images)
    for image, got in zip(images, batched):
        for a, b in zip(detect(net, image), got):
            assert torch.allclose(a, b, atol=1e-4)


def test_refine_gives_landmarks_for_a_given_box(net, shared_data):
    image = _orl(shared_data)
    boxes, _, marks = detect(net, image)
    given = torch.cat([boxes, torch.tensor([[0.0, 0.0, 30.0, 20.0]])])  # a face, then hair
    got_boxes, got_scores, got_marks = refine(net, image, given)
    assert got_boxes.shape == (2, 4) and got_scores.shape == (2,) and got_marks.shape == (2, 5, 2)
    assert got_scores[0] > 0.99 > got_scores[1]
    # O-Net again on its own output box, squared: the same points within a tenth of the face
    side = float(boxes[0, 2] - boxes[0, 0])
    assert (got_marks[0] - marks[0]).abs().max() < 0.1 * side
    assert got_marks[0, :2, 1].max() < got_marks[0, 2, 1] < got_marks[0, 3:, 1].min()
    assert refine(net, image, torch.zeros(0, 4))[2].shape == (0, 5, 2)


def test_square_and_min_nms_follow_mtcnn():
    sq = square(torch.tensor([[10.0, 20.0, 30.0, 60.0, 0.9]]))
    assert sq.tolist() == [[0.0, 20.0, 40.0, 60.0, pytest.approx(0.9)]]
    # a small box inside a big one overlaps little by IoU but fully by the smaller area
    boxes = torch.tensor([[0.0, 0.0, 99.0, 99.0], [10.0, 10.0, 29.0, 29.0], [200, 0, 240, 40]])
    assert nms_min(boxes, torch.tensor([0.9, 0.95, 0.5])).tolist() == [1, 2]


def test_too_small_an_image_finds_nothing():
    boxes, scores, marks = detect(build("mtcnn").eval(), torch.zeros(3, 15, 15, dtype=torch.uint8))
    assert boxes.shape == (0, 4) and scores.shape == (0,) and marks.shape == (0, 5, 2)


@pytest.mark.parametrize("image, kwargs, match", [
    (torch.zeros(3, 40, 40), {}, "dtype torch.float32.*uint8"),
    (torch.zeros(40, 40, 3, dtype=torch.uint8), {}, r"shape \[40, 40, 3\].*\[3, H, W\]"),
    (torch.zeros(1, 3, 40, 40, dtype=torch.uint8), {}, r"shape \[1, 3, 40, 40\]"),
    (np.zeros((3, 40, 40), np.uint8), {}, "ndarray image"),
    (torch.zeros(3, 0, 40, dtype=torch.uint8), {}, "empty image"),
    (torch.zeros(3, 40, 40, dtype=torch.uint8), {"thresholds": (0.6, 0.7)}, "3 probabilities"),
    (torch.zeros(3, 40, 40, dtype=torch.uint8), {"factor": 1.0}, "factor=1.0"),
])
def test_bad_input_raises_one_line_input_error(image, kwargs, match):
    with pytest.raises(InputError, match=match) as err:
        detect(build("mtcnn"), image, **kwargs)
    assert "\n" not in str(err.value) and "valid" in str(err.value)


@pytest.mark.parametrize("boxes, match", [
    (torch.zeros(2, 5), r"boxes \[2, 5\]"),
    (torch.zeros(2, 4, dtype=torch.long), "dtype torch.int64"),
    (torch.tensor([[float("nan"), 0, 10, 10]]), "non-finite"),
    (torch.tensor([[500.0, 500, 540, 540]]), "outside the 40x40 image"),
])
def test_refine_rejects_bad_boxes(boxes, match):
    with pytest.raises(InputError, match=match):
        refine(build("mtcnn"), torch.zeros(3, 40, 40, dtype=torch.uint8), boxes)


def test_same_faces_as_facenet_pytorch_on_three_photos(net, shared_data, monkeypatch):
    wheel = _wheel()
    if wheel is not None and wheel.is_dir():  # an unzipped wheel: its code, importable
        monkeypatch.syspath_prepend(str(wheel))
    original = pytest.importorskip(
        "facenet_pytorch", reason="the original facenet-pytorch 2.6.0 is not importable (it pins "
        "torch < 2.3; benchmarks/faces_mtcnn_parity.py runs it in a child process)")
    ref = original.MTCNN(keep_all=True, min_face_size=20, thresholds=[0.6, 0.7, 0.7],
                         factor=0.709)
    for name in PHOTOS:
        img = Image.open(shared_data / "coco128" / "images" / "train2017" / name).convert("RGB")
        found = ref.detect(img, landmarks=True)  # numpy object arrays: made float here
        ref_boxes, ref_probs, ref_marks = (torch.tensor(np.asarray(a, float)) for a in found)
        rgb = torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1)
        boxes, probs, marks = detect(net, rgb)
        assert len(boxes) == len(ref_boxes) >= 1, name
        for box, prob, mark in zip(ref_boxes, ref_probs, ref_marks):
            j = int((boxes - box).abs().amax(1).argmin())
            assert (boxes[j] - box).abs().max() < 1, name
            assert (marks[j] - mark).abs().max() < 1, name
            assert abs(probs[j] - float(prob)) < 1e-4, name
