"""The Ultra-Light face detectors (RFB-320, slim-320): the published weights load key for
key, the priors and box decoding follow upstream's rules, and `detect` finds real faces.
Port fidelity against the original code itself: benchmarks/faces_ultraface_parity.py."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from taskzoo.errors import ConfigError, InputError
from taskzoo.models import build
from taskzoo.models.ultraface import decode_boxes, ultraface_priors
from taskzoo.tasks.faces.ultraface import detect, detect_batch, postprocess

VARIANTS = ("rfb", "slim")


@pytest.fixture
def mirror(shared_data, monkeypatch):
    monkeypatch.setenv("TASKZOO_MIRROR", str(shared_data))
    return shared_data


def _published(variant: str) -> torch.nn.Module:
    from taskzoo.weights import thirdparty

    net = build(f"ultraface_{variant}")
    net.load_state_dict(thirdparty.ultraface_state(variant), strict=True)
    return net.eval()


def _rgb(path) -> torch.Tensor:
    array = np.array(Image.open(path).convert("RGB"))
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()


def test_published_weights_load_strictly_key_for_key(mirror):
    from taskzoo.weights import thirdparty

    sizes = {}
    for variant in VARIANTS:
        theirs = thirdparty.ultraface_state(variant)
        net = build(f"ultraface_{variant}")
        assert list(net.state_dict()) == list(theirs)  # same names, same order
        net.load_state_dict(theirs, strict=True)
        assert all(torch.equal(net.state_dict()[k], v) for k, v in theirs.items())
        sizes[variant] = len(theirs)
    # RFB-320's receptive field block has more tensors than slim-320's plain block
    assert sizes == {"rfb": 244, "slim": 184}
    with pytest.raises(ConfigError, match="rfb, slim"):
        thirdparty.ultraface_state("RFB-640")


def _upstream_rule(image_size, feature_maps, min_boxes):
    """Upstream's prior loop, written out: shrinkage = image / feature map, centres at
    (i + 0.5) / (image / shrinkage), sides min_box / image, clamped to [0, 1]."""
    priors = []
    for level, sides in enumerate(min_boxes):
        shrink_w = image_size[0] / feature_maps[0][level]
        shrink_h = image_size[1] / feature_maps[1][level]
        for j in range(feature_maps[1][level]):
            for i in range(feature_maps[0][level]):
                for s in sides:
                    priors.append([(i + 0.5) / (image_size[0] / shrink_w),
                                   (j + 0.5) / (image_size[1] / shrink_h),
                                   s / image_size[0], s / image_size[1]])
    return torch.tensor(priors).clamp(0.0, 1.0)


@pytest.mark.parametrize("size, feature_maps", [
    ((320, 240), [[40, 20, 10, 5], [30, 15, 8, 4]]),  # upstream's define_img_size table
    ((640, 480), [[80, 40, 20, 10], [60, 30, 15, 8]]),
    ((160, 120), [[20, 10, 5, 3], [15, 8, 4, 2]]),
])
def test_priors_follow_upstreams_table_and_loop(size, feature_maps):
    min_boxes = [[10, 16, 24], [32, 48], [64, 96], [128, 192, 256]]
    ours = ultraface_priors(*size)
    expected = _upstream_rule(size, feature_maps, min_boxes)
    assert ours.shape == expected.shape and ours.dtype == torch.float32
    assert torch.allclose(ours, expected, atol=1e-7, rtol=0)
    if size == (320, 240):
        assert len(ours) == 4420
        assert ours[-1].tolist() == pytest.approx([0.9, 0.875, 0.8, 1.0])  # 256/240 clamped


def test_priors_match_the_networks_outputs_at_any_size():
    net = build("ultraface_slim").eval()
    for w, h in ((300, 200), (97, 131)):
        logits, deltas = net(torch.zeros(1, 3, h, w))
        expected = sum(math.ceil(w / s) * math.ceil(h / s) * k
                       for s, k in zip((8, 16, 32, 64), (3, 2, 2, 3)))
        assert logits.shape == (1, expected, 2) and deltas.shape == (1, expected, 4)
        assert len(ultraface_priors(w, h)) == expected


def test_decode_inverts_the_ssd_encoding():
    priors = ultraface_priors(320, 240)
    gen = torch.Generator().manual_seed(0)
    centres = torch.rand(len(priors), 2, generator=gen)
    sizes = 0.05 + 0.5 * torch.rand(len(priors), 2, generator=gen)
    deltas = torch.cat(((centres - priors[:, :2]) / priors[:, 2:] / 0.1,
                        torch.log(sizes / priors[:, 2:]) / 0.2), 1)
    boxes = decode_boxes(deltas[None], priors)[0]
    corners = torch.cat((centres - sizes / 2, centres + sizes / 2), 1)
    assert torch.allclose(boxes, corners, atol=1e-5)
    # zero deltas give the priors themselves, as corners
    zero = decode_boxes(torch.zeros(len(priors), 4), priors)
    assert torch.allclose(zero[:, 2:] - zero[:, :2], priors[:, 2:], atol=1e-6)


def test_postprocess_thresholds_truncates_and_suppresses_as_upstream():
    # three priors: two that overlap (IoU 0.905), one apart; scores 0.9, 0.8, 0.7 by logits
    priors = torch.tensor([[0.3, 0.3, 0.2, 0.2], [0.31, 0.3, 0.2, 0.2], [0.7, 0.7, 0.2, 0.2]])
    scores = torch.tensor([0.9, 0.8, 0.7])
    logits = torch.stack((torch.zeros(3), torch.log(scores / (1 - scores))), 1)
    deltas = torch.zeros(3, 4)
    boxes, kept = postprocess(logits, deltas, priors, 100, 50, conf=0.5, iou=0.3)
    assert kept.tolist() == pytest.approx([0.9, 0.7], abs=1e-6)  # the 0.8 one suppressed
    assert boxes[0].tolist() == pytest.approx([20.0, 10.0, 40.0, 20.0], abs=1e-4)  # pixels
    # `candidates` truncates before NMS: only the best; `conf` is a strict bound
    assert len(postprocess(logits, deltas, priors, 100, 50, conf=0.5, candidates=1)[1]) == 1
    assert len(postprocess(logits, deltas, priors, 100, 50, conf=0.7 + 1e-6)[1]) == 1
    assert len(postprocess(logits, deltas, priors, 100, 50, conf=0.5, iou=0.95)[1]) == 3


def test_detect_finds_the_two_faces_in_a_real_photo(mirror):
    # coco128 000000000110: a girl and a woman at a table, both faces frontal (checked by
    # eye: the girl's face near (93, 242), the woman's near (500, 81), in pixels); diners
    # further back have small faces in the top 60 rows (slim-320 finds one at 0.74)
    image = _rgb(mirror / "coco128" / "images" / "train2017" / "000000000110.jpg")
    for variant in VARIANTS:
        boxes, scores = detect(_published(variant), image)
        assert 2 <= len(boxes) <= 3 and bool((scores[:2] > 0.95).all()), (variant, scores)
        centres = sorted(((b[0] + b[2]) / 2, (b[1] + b[3]) / 2) for b in boxes[:2].tolist())
        for (x, y), (ex, ey) in zip(centres, [(93, 242), (500, 81)]):
            assert abs(x - ex) < 15 and abs(y - ey) < 15, (variant, centres)
        assert all(b[3] < 60 and b[2] - b[0] < 50 for b in boxes[2:].tolist()), boxes
    assert len(detect(_published("rfb"), image)[0]) == 2


def test_detect_finds_one_face_in_a_padded_orl_photo(mirror):
    face = _rgb(mirror / "att_faces" / "s1" / "1.pgm")  # 92x112 grey, one face
    canvas = torch.full((3, 240, 320), 127, dtype=torch.uint8)
    canvas[:, 64:176, 114:206] = face
    for variant in VARIANTS:
        boxes, scores = detect(_published(variant), canvas)
        assert len(boxes) == 1, (variant, scores)
        x1, y1, x2, y2 = boxes[0].tolist()
        assert 100 < x1 < x2 < 220 and 50 < y1 < y2 < 190  # on the pasted face


def test_synthetic_shapes_batches_and_bad_input():
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    images = [torch.randint(0, 256, (3, h, w), dtype=torch.uint8, generator=gen)
              for h, w in ((240, 320), (97, 211))]
    for variant in VARIANTS:
        net = build(f"ultraface_{variant}").eval()  # random weights: shapes, not faces
        logits, deltas = net(torch.zeros(2, 3, 240, 320))
        assert logits.shape == (2, 4420, 2) and deltas.shape == (2, 4420, 4)
        batched = detect_batch(net, images, conf=0.0, candidates=50)
        for image, (boxes, scores) in zip(images, batched):
            one = detect(net, image, conf=0.0, candidates=50)
            assert boxes.shape[1] == 4 and 0 < len(boxes) <= 50 and len(scores) == len(boxes)
            assert torch.allclose(one[0], boxes, atol=1e-4)
            assert bool((scores[:-1] >= scores[1:]).all())  # best first
    with pytest.raises(InputError, match="uint8 tensor"):
        detect(net, images[0].float())
    with pytest.raises(InputError, match=r"shape \(1, 20, 20\)"):
        detect(net, torch.zeros(1, 20, 20, dtype=torch.uint8))
    with pytest.raises(InputError, match="width, height"):
        detect(net, images[0], size=(320,))
