"""yolo_tiny (models/yolo.py, models/yolo_loss.py) and its backbone csp_darknet (models/csp.py)."""

from __future__ import annotations

import math

import pytest
import torch

from taskzoo.models import build
from taskzoo.models.yolo_loss import task_aligned_assign


def _num_anchors(h: int, w: int) -> int:
    return sum((h // s) * (w // s) for s in (8, 16, 32))


def _targets(*boxes_per_image, labels=None):
    out = []
    for i, boxes in enumerate(boxes_per_image):
        b = torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)
        lab = torch.tensor(labels[i] if labels else [0] * len(b), dtype=torch.long)
        out.append({"boxes": b, "labels": lab})
    return out


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return build("yolo_tiny", num_classes=3)


def test_builds_with_the_shared_detector_attributes(net):
    assert net.num_classes == 3 and net.input_format == "rgb" and net.stride == 32
    assert net.zoo_spec == ("yolo_tiny", {"num_classes": 3})
    params = sum(p.numel() for p in build("yolo_tiny", num_classes=1).parameters())
    assert 1_000_000 < params < 3_000_000, params


@pytest.mark.parametrize("size", [(320, 320), (256, 384)])
def test_output_and_decode_shapes(net, size):
    h, w = size
    net.eval()
    with torch.no_grad():
        out = net(torch.rand(2, 3, h, w))
    a = _num_anchors(h, w)
    assert out["cls"].shape == (2, a, 3) and out["reg"].shape == (2, a, 4)
    assert out["anchors"].shape == (a, 2) and out["image_size"] == (h, w)
    dets = net.decode(out, conf=0.0, max_det=7)  # untrained: every score ~0.01 passes
    assert len(dets) == 2
    for d in dets:
        assert d["boxes"].shape == (7, 4) and d["scores"].shape == (7,)
        assert d["labels"].dtype == torch.int64 and d["labels"].shape == (7,)
        assert ((d["labels"] >= 0) & (d["labels"] < 3)).all()
        assert (d["scores"][:-1] >= d["scores"][1:]).all(), "sorted by score"
        b = d["boxes"]
        assert (b[:, 0] >= 0).all() and (b[:, 1] >= 0).all(), "clipped"
        assert (b[:, 2] <= w).all() and (b[:, 3] <= h).all(), "clipped"
        assert (b[:, 2] >= b[:, 0]).all() and (b[:, 3] >= b[:, 1]).all()
    none = net.decode(out, conf=0.999)
    assert none[0]["boxes"].shape == (0, 4) and none[0]["labels"].dtype == torch.int64


def test_rejects_bad_sizes_and_channels(net):
    with pytest.raises(ValueError, match="multiples of 32"):
        net(torch.rand(1, 3, 100, 128))
    with pytest.raises(ValueError, match=r"\[B, 3, H, W\]"):
        net(torch.rand(1, 1, 128, 128))
    out = net(torch.rand(1, 3, 64, 64))
    with pytest.raises(ValueError, match="labels must be in"):
        net.loss(out, _targets([[0, 0, 10, 10]], labels=[[3]]))
    with pytest.raises(ValueError, match="strides 8/16/32"):
        build("yolo_tiny", backbone="resnet20")  # CIFAR ResNet: strides 1/2/4


def test_loss_with_an_empty_image_is_finite_and_reaches_every_parameter():
    torch.manual_seed(0)
    model = build("yolo_tiny", num_classes=2).train()
    out = model(torch.rand(2, 3, 128, 128))
    targets = _targets([[10, 20, 70, 100], [60, 60, 120, 90]], [], labels=[[0, 1], []])
    loss, parts = model.loss(out, targets)
    assert loss.ndim == 0 and torch.isfinite(loss) and loss > 0
    assert {"box", "cls"} <= set(parts)
    assert all(not v.requires_grad for v in parts.values())
    assert parts["box"] > 0 and parts["cls"] > 0
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, f"{name}: no gradient"
        assert torch.isfinite(p.grad).all(), name
    stem = model.backbone.stem[0].weight.grad
    assert stem.abs().sum() > 0, "the gradient reaches the backbone"


def test_loss_without_any_object_and_independent_of_batch_size(net):
    net.train()
    out = net(torch.rand(1, 3, 64, 96))
    loss, parts = net.loss(out, _targets([]))
    assert torch.isfinite(loss) and loss > 0 and parts["box"] == 0
    one = _targets([[5, 5, 40, 50], [50, 10, 90, 60]], labels=[[2, 1]])
    twice = {k: (torch.cat([v, v]) if k in ("cls", "reg") else v) for k, v in out.items()}
    single, _ = net.loss(out, one)
    double, _ = net.loss(twice, one + one)
    assert torch.allclose(single, double, rtol=1e-5)


def test_assigner_puts_at_most_topk_positives_per_gt_inside_its_box():
    g = torch.Generator().manual_seed(0)
    ys, xs = torch.meshgrid(torch.arange(16.0), torch.arange(16.0), indexing="ij")
    anchors = torch.stack([xs, ys], -1).reshape(-1, 2) * 8 + 4  # stride 8 on 128x128
    a = anchors.shape[0]
    half = 4 + 30 * torch.rand(a, 2, generator=g)
    boxes = torch.cat([anchors - half, anchors + half], 1)
    scores = torch.rand(a, 3, generator=g)
    gt = torch.tensor([[10.0, 10, 90, 70], [40, 30, 120, 120], [0, 100, 50, 128],
                       [61, 61, 63, 63]])  # overlapping gts, and one too small for any centre
    labels = torch.tensor([0, 2, 1, 0])
    fg, index, target = task_aligned_assign(scores, boxes, anchors, gt, labels, topk=10)
    assert fg.any() and fg.sum() <= 10 * len(gt)
    x, y = anchors[fg].unbind(1)
    g_fg = gt[index[fg]]
    assert ((x > g_fg[:, 0]) & (x < g_fg[:, 2]) & (y > g_fg[:, 1]) & (y < g_fg[:, 3])).all()
    counts = torch.bincount(index[fg], minlength=len(gt))
    assert (counts[:3] >= 1).all() and (counts <= 10).all() and counts[3] == 0
    assert (target[~fg] == 0).all() and (target >= 0).all() and (target <= 1).all()
    cls = target[fg].argmax(1)
    assert (cls == labels[index[fg]]).all(), "the soft target sits on the gt's class"
    assert ((target[fg] > 0).sum(1) <= 1).all()
    # normalised per gt: its best anchor's target is the gt's best IoU among its positives
    from torchvision.ops import box_iou

    iou = box_iou(gt, boxes)
    for j in range(3):
        mine = fg & (index == j)
        assert torch.isclose(target[mine].max(), iou[j, mine].max(), atol=1e-5)
    # no gt: no positive
    fg0, _, t0 = task_aligned_assign(scores, boxes, anchors, gt[:0], labels[:0])
    assert not fg0.any() and (t0 == 0).all()


def test_decode_is_class_aware_and_clips():
    model = build("yolo_tiny", num_classes=2)
    anchors = torch.tensor([[30.0, 30.0], [31.0, 30.0], [30.0, 31.0]])
    reg = torch.full((1, 3, 4), math.log(math.expm1(2.0)))  # 2 strides of 16 px each side
    cls = torch.tensor([[[4.0, -9.0], [-9.0, 3.0], [2.0, -9.0]]])  # anchor 2 duplicates 0
    out = {"cls": cls, "reg": reg, "anchors": anchors, "strides": torch.full((3, 1), 16.0),
           "image_size": (64, 64)}
    (d,) = model.decode(out, conf=0.25, iou=0.5)
    assert d["labels"].tolist() == [0, 1]
    assert torch.allclose(d["boxes"][0], torch.tensor([0.0, 0.0, 62.0, 62.0]))
    assert torch.allclose(d["scores"], torch.sigmoid(torch.tensor([4.0, 3.0])))


def test_bf16_autocast_loss_and_decode_in_float32():
    torch.manual_seed(0)
    model = build("yolo_tiny", num_classes=1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(torch.rand(2, 3, 64, 64))
        loss, parts = model.loss(out, _targets([[4, 4, 40, 60]], []))
        dets = model.decode(out, conf=0.0, max_det=5)
    assert out["cls"].dtype == torch.bfloat16
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    assert dets[0]["boxes"].dtype == torch.float32 and dets[0]["boxes"].shape == (5, 4)
    loss.backward()


def test_csp_darknet_is_a_zoo_classifier_with_features():
    net = build("csp_darknet", num_classes=5, small_input=False)
    x = torch.rand(2, 3, 64, 96)
    assert net(x).shape == (2, 5)
    maps = net.features(x)
    assert net.feature_strides == (8, 16, 32) and net.feature_channels == (64, 128, 256)
    for m, c, s in zip(maps, net.feature_channels, net.feature_strides):
        assert m.shape == (2, c, 64 // s, 96 // s)
    small = build("csp_darknet", num_classes=5)  # small_input: strides 4/8/16
    assert small.feature_strides == (4, 8, 16) and small(torch.rand(1, 3, 28, 28)).shape == (1, 5)


def test_other_zoo_backbones_fit():
    model = build("yolo_tiny", num_classes=1, backbone="mobilenet_v3_small", width=32).eval()
    with torch.no_grad():
        out = model(torch.rand(1, 3, 64, 64))
    assert out["cls"].shape == (1, _num_anchors(64, 64), 1)


def _rectangles(size: int = 128):
    """Two noisy images with coloured rectangles: red = class 0, blue = class 1."""
    g = torch.Generator().manual_seed(0)
    images = torch.rand(2, 3, size, size, generator=g) * 0.5
    objects = [[(10, 20, 60, 90, 0), (70, 30, 120, 70, 1)], [(30, 50, 100, 110, 1)]]
    colours = torch.tensor([[1.0, 0.1, 0.1], [0.1, 0.2, 1.0]])
    for i, objs in enumerate(objects):
        for x1, y1, x2, y2, c in objs:
            images[i, :, y1:y2, x1:x2] = colours[c][:, None, None]
    targets = _targets(*[[o[:4] for o in objs] for objs in objects],
                       labels=[[o[4] for o in objs] for objs in objects])
    return images, targets


def test_overfits_two_images():
    from torchvision.ops import box_iou

    torch.manual_seed(0)
    images, targets = _rectangles()
    model = build("yolo_tiny", num_classes=2)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(100):
        loss, _ = model.loss(model(images), targets)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] / 5, (losses[0], losses[-1])
    model.eval()
    with torch.no_grad():
        dets = model.decode(model(images), conf=0.25)
    for d, t in zip(dets, targets):
        assert len(d["boxes"]) >= len(t["boxes"])
        iou = box_iou(t["boxes"], d["boxes"])  # [gt, det]
        for j in range(len(t["boxes"])):
            hit = (iou[j] > 0.5) & (d["labels"] == t["labels"][j])
            assert hit.any(), f"gt {t['boxes'][j].tolist()} not found: {d}"
