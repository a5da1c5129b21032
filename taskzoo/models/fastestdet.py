"""FastestDet: a single-scale anchor-free YOLO-like detector on a ShuffleNetV2 backbone.

The published architecture of dog-qiuqiu/FastestDet (BSD-3-Clause, commit 50473cd): a
ShuffleNetV2 (0.5x widths 24/48/96/192, stage repeats 4/8/4) whose three stages (strides
8/16/32) are pooled or upsampled to stride 16 and concatenated, a light SPP of 5x5
depthwise convolutions, and one head at stride 16 that predicts per cell an objectness
(sigmoid), a box (centre offsets through tanh, width and height through sigmoid, as
fractions of the image) and class probabilities (softmax). 352x352 input, 0.25M parameters.

Module names are the upstream ones (`SPP`, `detect_head.obj_layers.conv5x5`, ...) so that
the published COCO weights load strictly, key for key; `backbone` alone takes the upstream
`shufflenetv2.pth`. The upstream network reads BGR images (it was trained on OpenCV
decodes): this one takes RGB in [0, 1], like every taskzoo detector, and swaps the channels
itself (`bgr=True`).

The detector interface every taskzoo detector shares:

- `forward(images [B, 3, H, W] RGB in [0, 1])` -> the raw head map [B, 5 + C, H/16, W/16]
- `loss(outputs, targets)` -> (loss, parts): targets are dicts of "boxes" (xyxy pixels of
  the input) and "labels" per image
- `decode(outputs, conf=, iou=, max_det=)` -> per image {"boxes", "scores", "labels"}

The loss is the upstream one, written anew: every ground-truth centre is assigned to the
four grid corners around it, positives whose SIoU is below the batch mean are dropped, the
objectness target is the SIoU (smooth L1, background weighted 0.75 and positives by their
rarity), classes by NLL; total = 8 box + 16 obj + cls. torchvision.ops has no SIoU (Gevorgyan
2022), which the published weights were trained with, so it is hand-written here.

    >>> net = fastestdet(num_classes=80)
    >>> out = net(torch.rand(1, 3, 352, 352))
    >>> tuple(out.shape), len(net.decode(out, conf=0.5))
    ((1, 85, 22, 22), 1)
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from taskzoo.models import MODELS


def _bn_relu(c: int) -> list[nn.Module]:
    return [nn.BatchNorm2d(c), nn.ReLU(inplace=True)]


class ShuffleV2Block(nn.Module):
    """ShuffleNetV2 unit (Ma et al. 2018): split (stride 1) or duplicate (stride 2) the
    channels, a 1x1 -> 3x3 depthwise -> 1x1 main branch, concatenate, shuffle."""

    def __init__(self, inp: int, oup: int, mid: int, *, stride: int) -> None:
        super().__init__()
        self.stride = stride
        self.branch_main = nn.Sequential(
            nn.Conv2d(inp, mid, 1, 1, 0, bias=False), *_bn_relu(mid),
            nn.Conv2d(mid, mid, 3, stride, 1, groups=mid, bias=False), nn.BatchNorm2d(mid),
            nn.Conv2d(mid, oup - inp, 1, 1, 0, bias=False), *_bn_relu(oup - inp))
        self.branch_proj = nn.Sequential(
            nn.Conv2d(inp, inp, 3, stride, 1, groups=inp, bias=False), nn.BatchNorm2d(inp),
            nn.Conv2d(inp, inp, 1, 1, 0, bias=False), *_bn_relu(inp)) if stride == 2 else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.branch_proj is None:
            # the upstream shuffle: channels (0, 2, 4, ...) pass through, (1, 3, ...) are
            # transformed; kept exactly, as the weights depend on which half is which
            b, c, h, w = x.shape
            x = x.reshape(b * c // 2, 2, h * w).permute(1, 0, 2).reshape(2, -1, c // 2, h, w)
            return torch.cat((x[0], self.branch_main(x[1])), 1)
        return torch.cat((self.branch_proj(x), self.branch_main(x)), 1)


class ShuffleNetV2(nn.Module):
    """ShuffleNetV2 0.5x trunk: `forward(x)` returns the maps at strides 8, 16 and 32."""

    def __init__(self, repeats: tuple[int, ...] = (4, 8, 4),
                 widths: tuple[int, ...] = (24, 48, 96, 192)) -> None:
        super().__init__()
        c = widths[0]
        self.first_conv = nn.Sequential(nn.Conv2d(3, c, 3, 2, 1, bias=False), *_bn_relu(c))
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        for name, n, out in zip(("stage2", "stage3", "stage4"), repeats, widths[1:]):
            blocks = [ShuffleV2Block(c if i == 0 else out // 2, out, out // 2,
                                     stride=2 if i == 0 else 1) for i in range(n)]
            setattr(self, name, nn.Sequential(*blocks))
            c = out
        self.feature_channels = tuple(widths[1:])
        self.feature_strides = (8, 16, 32)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        p1 = self.stage2(self.maxpool(self.first_conv(x)))
        p2 = self.stage3(p1)
        return p1, p2, self.stage4(p2)

    features = forward


class Conv1x1(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv1x1 = nn.Sequential(nn.Conv2d(cin, cout, 1, 1, 0, bias=False), *_bn_relu(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv1x1(x)


def _dw5(c: int, n: int) -> nn.Sequential:
    """n x (5x5 depthwise conv, BN, ReLU)."""
    layers: list[nn.Module] = []
    for _ in range(n):
        layers += [nn.Conv2d(c, c, 5, 1, 2, groups=c, bias=False), *_bn_relu(c)]
    return nn.Sequential(*layers)


class SPP(nn.Module):
    """1x1 reduce, three depthwise 5x5 towers of depth 1/2/3 (receptive fields 5/9/13),
    concatenated, 1x1 back, residual."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.Conv1x1 = Conv1x1(cin, cout)
        self.S1, self.S2, self.S3 = _dw5(cout, 1), _dw5(cout, 2), _dw5(cout, 3)
        self.output = nn.Sequential(nn.Conv2d(cout * 3, cout, 1, 1, 0, bias=False),
                                    nn.BatchNorm2d(cout))
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.Conv1x1(x)
        y = torch.cat((self.S1(x), self.S2(x), self.S3(x)), dim=1)
        return self.relu(x + self.output(y))


class Head(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv5x5 = nn.Sequential(
            nn.Conv2d(cin, cin, 5, 1, 2, groups=cin, bias=False), *_bn_relu(cin),
            nn.Conv2d(cin, cout, 1, 1, 0, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv5x5(x)


class DetectHead(nn.Module):
    def __init__(self, cin: int, num_classes: int) -> None:
        super().__init__()
        self.conv1x1 = Conv1x1(cin, cin)
        self.obj_layers = Head(cin, 1)
        self.reg_layers = Head(cin, 4)
        self.cls_layers = Head(cin, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1x1(x)
        return torch.cat((self.obj_layers(x).sigmoid(), self.reg_layers(x),
                          self.cls_layers(x).softmax(dim=1)), dim=1)


class FastestDet(nn.Module):
    """ShuffleNetV2 -> stride-16 fusion -> SPP -> one anchor-free head (see the module doc)."""

    input_format = "rgb"  # what `forward` takes; the BGR swap for the weights is inside
    stride = 32  # input sides must be multiples of this (the stride-32 map is upsampled x2)
    head_modules = ("SPP", "detect_head")  # what a backbone-only user (a captioner) drops

    def __init__(self, *, num_classes: int = 80, bgr: bool = True) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.bgr = bgr
        self.backbone = ShuffleNetV2()
        widths = (48, 96, 192)
        self.upsample = nn.Upsample(scale_factor=2, mode="nearest")
        self.avg_pool = nn.AvgPool2d(kernel_size=3, stride=2, padding=1)
        self.SPP = SPP(sum(widths), widths[1])
        self.detect_head = DetectHead(widths[1], num_classes)
        self.feature_channels = self.backbone.feature_channels
        self.feature_strides = self.backbone.feature_strides
        _init_weights(self)

    def features(self, images: torch.Tensor) -> list[torch.Tensor]:
        """The ShuffleNetV2 maps at strides 8, 16 and 32 of RGB `images` in [0, 1]."""
        return list(self.backbone(images.flip(1) if self.bgr else images))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"FastestDet expects RGB images [B, 3, H, W], got a tensor of "
                             f"shape {tuple(images.shape)}")
        h, w = images.shape[-2:]
        if h % self.stride or w % self.stride:
            raise ValueError(f"FastestDet needs image sides that are multiples of "
                             f"{self.stride}, got {h}x{w} (352x352 is its native size)")
        x = images.flip(1) if self.bgr else images
        p1, p2, p3 = self.backbone(x)
        y = self.SPP(torch.cat((self.avg_pool(p1), p2, self.upsample(p3)), dim=1))
        return self.detect_head(y)

    # -- outputs -> boxes
    def decode(self, outputs: torch.Tensor, *, conf: float = 0.25, iou: float = 0.45,
               max_det: int = 300) -> list[dict[str, torch.Tensor]]:
        """Boxes in the input's pixels: score = obj^0.6 * cls^0.4 (the upstream rule), the
        best class of each cell, `conf` threshold, class-aware NMS at `iou`, at most
        `max_det` per image, best first."""
        import torchvision  # here, not at import: listing models stays light

        out = outputs.float()
        b, _, gh, gw = out.shape
        stride_y, stride_x = self.stride // 2, self.stride // 2
        img_h, img_w = gh * stride_y, gw * stride_x
        obj, reg, cls = out[:, 0], out[:, 1:5], out[:, 5:]
        cls_p, label = cls.max(dim=1)
        score = obj.clamp(min=0) ** 0.6 * cls_p.clamp(min=0) ** 0.4
        gy, gx = torch.meshgrid(torch.arange(gh, device=out.device),
                                torch.arange(gw, device=out.device), indexing="ij")
        cx = (reg[:, 0].tanh() + gx) / gw * img_w
        cy = (reg[:, 1].tanh() + gy) / gh * img_h
        bw, bh = reg[:, 2].sigmoid() * img_w, reg[:, 3].sigmoid() * img_h
        boxes = torch.stack((cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2), dim=-1)
        results = []
        for i in range(b):
            s, l, bx = score[i].flatten(), label[i].flatten(), boxes[i].reshape(-1, 4)
            keep = s > conf
            s, l, bx = s[keep], l[keep], bx[keep]
            keep = torchvision.ops.batched_nms(bx, s, l, iou)[:max_det]
            results.append({"boxes": bx[keep], "scores": s[keep], "labels": l[keep]})
        return results

    # -- the training loss
    def loss(self, outputs: torch.Tensor,
             targets: list[dict[str, torch.Tensor]]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        import torchvision

        out = outputs.float()
        n, _, gh, gw = out.shape
        img_h, img_w = gh * self.stride // 2, gw * self.stride // 2
        pobj, preg, pcls = out[:, 0], out[:, 1:5], out[:, 5:]
        tobj = torch.zeros_like(pobj)
        factor = torch.full_like(pobj, 0.75)
        zero = out.sum() * 0.0  # keeps the graph when a batch has no boxes
        box_loss, cls_loss = zero, zero
        # ground truth as (image, class, cx, cy, w, h) in grid cells
        rows = []
        for i, t in enumerate(targets):
            bx = t["boxes"].to(out.device, torch.float32)
            if len(bx):
                cxcywh = torchvision.ops.box_convert(bx, "xyxy", "cxcywh")
                cxcywh = cxcywh * cxcywh.new_tensor([gw / img_w, gh / img_h] * 2)
                rows.append(torch.cat((torch.full_like(cxcywh[:, :1], i),
                                       t["labels"].to(out.device).float()[:, None], cxcywh), 1))
        if rows:
            gt = torch.cat(rows)
            # each centre goes to the four grid corners around it (upstream's "quadrant")
            quad = torch.tensor([[0, 0], [1, 0], [0, 1], [1, 1]], device=out.device)
            gij = gt[None, :, 2:4].long() + quad[:, None, :]  # [4, G, 2]
            ok = ((gij > 0) & (gij < torch.tensor([gw, gh], device=out.device))).all(-1)
            gx, gy = gij[ok].T
            bi = gt[None, :, 0].expand(4, -1)[ok].long()
            gbox, gcls = gt[None, :, 2:].expand(4, -1, -1)[ok], gt[None, :, 1].expand(4, -1)[ok]
            if len(bi):
                r = preg[bi, :, gy, gx]
                pbox = torch.stack((r[:, 0].tanh() + gx, r[:, 1].tanh() + gy,
                                    r[:, 2].sigmoid() * gw, r[:, 3].sigmoid() * gh), 1)
                siou = _siou(pbox, gbox)
                keep = siou > siou.mean()
                bi, gx, gy, siou = bi[keep], gx[keep], gy[keep], siou[keep]
                box_loss = (1.0 - siou).mean()
                p = pcls[bi, :, gy, gx].clamp(min=1e-12)
                cls_loss = F.nll_loss(p.log(), gcls[keep].long())
                tobj[bi, gy, gx] = siou.detach().float()
                counts = torch.bincount(bi, minlength=n).float()
                factor[bi, gy, gx] = 0.25 * (gh * gw) / counts[bi]
        obj_loss = (F.smooth_l1_loss(pobj, tobj, reduction="none") * factor).mean()
        total = 8 * box_loss + 16 * obj_loss + cls_loss
        return total, {"box": box_loss.detach(), "obj": obj_loss.detach(), "cls": cls_loss.detach()}


def _siou(pred: torch.Tensor, gt: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """SIoU (Gevorgyan 2022) of matched cxcywh boxes: IoU minus half the distance (angle
    aware) and shape costs."""
    import torchvision

    p = torchvision.ops.box_convert(pred, "cxcywh", "xyxy")
    g = torchvision.ops.box_convert(gt, "cxcywh", "xyxy")
    inter = ((torch.min(p[:, 2], g[:, 2]) - torch.max(p[:, 0], g[:, 0])).clamp(0)
             * (torch.min(p[:, 3], g[:, 3]) - torch.max(p[:, 1], g[:, 1])).clamp(0))
    w1, h1 = pred[:, 2], pred[:, 3] + eps
    w2, h2 = gt[:, 2], gt[:, 3] + eps
    iou = inter / (w1 * h1 + w2 * h2 - inter + eps)
    cw = torch.max(p[:, 2], g[:, 2]) - torch.min(p[:, 0], g[:, 0])
    ch = torch.max(p[:, 3], g[:, 3]) - torch.min(p[:, 1], g[:, 1])
    s_cw, s_ch = gt[:, 0] - pred[:, 0], gt[:, 1] - pred[:, 1]
    sigma = torch.sqrt(s_cw ** 2 + s_ch ** 2) + eps
    sin_a1, sin_a2 = s_cw.abs() / sigma, s_ch.abs() / sigma
    sin_alpha = torch.where(sin_a1 > math.sqrt(2) / 2, sin_a2, sin_a1)
    angle = torch.cos(torch.arcsin(sin_alpha.clamp(max=1.0)) * 2 - math.pi / 2)
    gamma = angle - 2
    dist = 2 - torch.exp(gamma * (s_cw / cw) ** 2) - torch.exp(gamma * (s_ch / ch) ** 2)
    om_w = (w1 - w2).abs() / torch.max(w1, w2)
    om_h = (h1 - h2).abs() / torch.max(h1, h2)
    shape = (1 - torch.exp(-om_w)) ** 4 + (1 - torch.exp(-om_h)) ** 4
    return iou - 0.5 * (dist + shape)


def _init_weights(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


@MODELS.register("fastestdet")
def fastestdet(*, num_classes: int = 80, bgr: bool = True) -> FastestDet:
    """FastestDet (dog-qiuqiu, BSD-3): 352x352, stride 16, `num_classes` softmax classes;
    `bgr` swaps RGB inputs to the BGR the published weights were trained on."""
    return FastestDet(num_classes=num_classes, bgr=bgr)


def backbone_keys(state: dict[str, Any]) -> dict[str, Any]:
    """The upstream `shufflenetv2.pth` keys as this model's (`backbone.` prefixed)."""
    return {f"backbone.{k}": v for k, v in state.items()}
