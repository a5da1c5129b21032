"""FastestDet: shapes, the upstream BGR convention, decoding and its loss (the published
weights themselves are checked in test_detection.py)."""

from __future__ import annotations

import pytest
import torch

from taskzoo.models import build


def test_shapes_errors_and_the_bgr_swap():
    torch.manual_seed(0)
    net = build("fastestdet", num_classes=3).eval()
    x = torch.rand(2, 3, 64, 96)
    out = net(x)
    assert out.shape == (2, 5 + 3, 4, 6)
    assert torch.all((out[:, 0] >= 0) & (out[:, 0] <= 1))  # objectness is a probability
    assert torch.allclose(out[:, 5:].sum(1), torch.ones(2, 4, 6), atol=1e-5)  # softmax classes
    rgb = build("fastestdet", num_classes=3, bgr=False).eval()
    rgb.load_state_dict(net.state_dict())
    assert torch.allclose(rgb(x.flip(1)), out, atol=1e-5)  # bgr=True reads RGB as BGR
    with pytest.raises(ValueError, match="multiples of 32"):
        net(torch.rand(1, 3, 100, 96))
    with pytest.raises(ValueError, match=r"\[B, 3, H, W\]"):
        net(torch.rand(1, 1, 64, 64))


def test_decode_maps_cells_to_pixels_thresholds_and_nms():
    net = build("fastestdet", num_classes=2)
    out = torch.zeros(1, 7, 4, 4)
    out[0, 5] = 1.0  # class 0 everywhere
    out[0, 0, 1, 2] = 0.9  # one confident cell: row 1, column 2
    out[0, 3:5, 1, 2] = 0.0  # w = h = sigmoid(0) = half the image
    res = net.decode(out, conf=0.5, iou=0.45)[0]
    assert res["labels"].tolist() == [0]
    # centre at (column 2 + tanh 0) / 4 * 64 = 32, (row 1) / 4 * 64 = 16; size 32 x 32
    assert torch.allclose(res["boxes"], torch.tensor([[16.0, 0.0, 48.0, 32.0]]))
    assert res["scores"].item() == pytest.approx(0.9 ** 0.6)
    out[0, 0, 1, 3] = 0.8  # a neighbour whose box overlaps half: kept at iou 0.45? no
    assert len(net.decode(out, conf=0.5, iou=0.3)[0]["boxes"]) == 1
    assert len(net.decode(out, conf=0.5, iou=0.9)[0]["boxes"]) == 2


def test_loss_reaches_every_parameter_and_handles_empty_images():
    torch.manual_seed(0)
    net = build("fastestdet", num_classes=2).train()
    x = torch.rand(2, 3, 128, 128)
    targets = [{"boxes": torch.tensor([[20.0, 30.0, 80.0, 110.0], [60.0, 10.0, 120.0, 50.0]]),
                "labels": torch.tensor([0, 1])},
               {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}]
    loss, parts = net.loss(net(x), targets)
    assert torch.isfinite(loss) and loss > 0 and set(parts) == {"box", "obj", "cls"}
    loss.backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    empty = [targets[1], targets[1]]
    net.zero_grad()
    loss, parts = net.loss(net(x), empty)
    assert torch.isfinite(loss) and parts["box"] == 0 and parts["cls"] == 0
    loss.backward()  # only objectness learns: every cell is background


def test_a_hundred_steps_fit_one_box():
    import torchvision

    torch.manual_seed(0)
    net = build("fastestdet", num_classes=1).train()
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3)
    x = torch.rand(2, 3, 128, 128) * 0.3
    x[:, :, 32:96, 48:80] = 0.9
    t = [{"boxes": torch.tensor([[48.0, 32.0, 80.0, 96.0]]), "labels": torch.tensor([0])}] * 2
    losses = []
    for _ in range(100):
        loss, _ = net.loss(net(x), t)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] / 3
    with torch.no_grad():  # batch statistics: 100 steps leave BN's running ones behind
        res = net.decode(net(x), conf=0.05)[0]
    assert torchvision.ops.box_iou(res["boxes"][:1], t[0]["boxes"]).item() > 0.7
