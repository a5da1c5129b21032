"""Ultra-Light-Fast-Generic-Face-Detector-1MB: the RFB-320 and slim-320 face detectors.

The published architecture of Linzaer/Ultra-Light-Fast-Generic-Face-Detector-1MB (MIT,
commit dffdddd), written anew from reading it: an SSD with a MobileNet-like trunk of
depthwise-separable convolutions (`base_net`, 13 blocks, 16 -> 256 channels, strides 2 to
32), one extra stride-64 stage (`extras`), and classification / regression heads on four
maps (strides 8, 16, 32, 64) with 3, 2, 2 and 3 square priors per cell (10-24, 32-48,
64-96, 128-256 px: `MIN_BOXES`). RFB-320 replaces the eighth trunk block with a receptive
field block (three dilated branches, Liu et al. 2018); slim-320 keeps a plain block there.
Trained on WIDER FACE at 320x240; about 0.3M parameters.

Module names are the upstream ones (`base_net.7.branch0.0.conv`, `extras.0.2.0`,
`classification_headers.3`, ...) so that `version-RFB-320.pth` and `version-slim-320.pth`
load strictly, key for key.

- `forward(x [N, 3, H, W])`, x already normalised as upstream: RGB, (pixel - 127) / 128,
  -> (logits [N, P, 2] (background, face), deltas [N, P, 4]), both raw
- `ultraface_priors(width, height)` -> the P priors (cx, cy, w, h) as image fractions, in
  the order of the heads' outputs (4,420 for 320x240)
- `decode_boxes(deltas, priors)` -> corner boxes (x1, y1, x2, y2) as image fractions

    >>> net = ultraface_rfb().eval()
    >>> logits, deltas = net(torch.zeros(1, 3, 240, 320))
    >>> tuple(logits.shape), tuple(deltas.shape), tuple(ultraface_priors(320, 240).shape)
    ((1, 4420, 2), (1, 4420, 4), (4420, 4))
"""

from __future__ import annotations

import math

import torch
from torch import nn

from taskzoo.models import MODELS

STRIDES = (8, 16, 32, 64)  # the four heads' strides (3 trunk maps, then the extra stage)
MIN_BOXES = ((10, 16, 24), (32, 48), (64, 96), (128, 192, 256))  # prior sides, input pixels
BASE = 16  # the trunk's first width (upstream `base_channel = 8 * 2`)


def _conv_bn(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


def _conv_dw(cin: int, cout: int, stride: int) -> nn.Sequential:
    """Depthwise 3x3 then pointwise 1x1, each with BatchNorm and ReLU."""
    return nn.Sequential(
        nn.Conv2d(cin, cin, 3, stride, 1, groups=cin, bias=False), nn.BatchNorm2d(cin),
        nn.ReLU(inplace=True),
        nn.Conv2d(cin, cout, 1, 1, 0, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


def _separable(cin: int, cout: int, *, stride: int = 1) -> nn.Sequential:
    """The heads' and extra stage's 3x3 depthwise (with bias) -> ReLU -> 1x1 (with bias)."""
    return nn.Sequential(nn.Conv2d(cin, cin, 3, stride, 1, groups=cin), nn.ReLU(),
                         nn.Conv2d(cin, cout, 1))


class BasicConv(nn.Module):
    """Convolution, BatchNorm (upstream's momentum 0.01) and an optional ReLU, under the
    upstream attribute names `conv` and `bn`."""

    def __init__(self, cin: int, cout: int, kernel: int, *, padding: int = 0,
                 dilation: int = 1, relu: bool = True) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, 1, padding, dilation=dilation, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=1e-5, momentum=0.01)
        self.relu = nn.ReLU(inplace=True) if relu else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn(self.conv(x))
        return self.relu(x) if self.relu is not None else x


class BasicRFB(nn.Module):
    """Receptive field block at stride 1: three branches (1x1 reduce, 3x3 convolutions,
    then a 3x3 of dilation 2, 3 and 5), concatenated, projected by a 1x1 (`ConvLinear`),
    scaled, added to a 1x1 shortcut, ReLU."""

    def __init__(self, cin: int, cout: int, *, scale: float = 1.0, map_reduce: int = 8) -> None:
        super().__init__()
        inter = cin // map_reduce
        self.scale = scale
        self.branch0 = nn.Sequential(
            BasicConv(cin, inter, 1, relu=False), BasicConv(inter, 2 * inter, 3, padding=1),
            BasicConv(2 * inter, 2 * inter, 3, padding=2, dilation=2, relu=False))
        self.branch1 = nn.Sequential(
            BasicConv(cin, inter, 1, relu=False), BasicConv(inter, 2 * inter, 3, padding=1),
            BasicConv(2 * inter, 2 * inter, 3, padding=3, dilation=3, relu=False))
        mid = inter // 2 * 3
        self.branch2 = nn.Sequential(
            BasicConv(cin, inter, 1, relu=False), BasicConv(inter, mid, 3, padding=1),
            BasicConv(mid, 2 * inter, 3, padding=1),
            BasicConv(2 * inter, 2 * inter, 3, padding=5, dilation=5, relu=False))
        self.ConvLinear = BasicConv(6 * inter, cout, 1, relu=False)
        self.shortcut = BasicConv(cin, cout, 1, relu=False)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.cat((self.branch0(x), self.branch1(x), self.branch2(x)), 1)
        return self.relu(self.ConvLinear(out) * self.scale + self.shortcut(x))


class UltraFace(nn.Module):
    """The SSD face detector; `rfb` picks RFB-320's trunk over slim-320's. Its heads read
    the trunk after blocks 8 and 11, its end (13) and the extra stage."""

    TAPS = (8, 11, 13)  # trunk blocks after which a head reads the map (strides 8, 16, 32)

    def __init__(self, *, rfb: bool, num_classes: int = 2) -> None:
        super().__init__()
        b = BASE
        block7 = BasicRFB(4 * b, 4 * b, scale=1.0) if rfb else _conv_dw(4 * b, 4 * b, 1)
        self.num_classes = num_classes
        self.base_net = nn.Sequential(
            _conv_bn(3, b, 2), _conv_dw(b, 2 * b, 1), _conv_dw(2 * b, 2 * b, 2),
            _conv_dw(2 * b, 2 * b, 1), _conv_dw(2 * b, 4 * b, 2), _conv_dw(4 * b, 4 * b, 1),
            _conv_dw(4 * b, 4 * b, 1), block7, _conv_dw(4 * b, 8 * b, 2),
            _conv_dw(8 * b, 8 * b, 1), _conv_dw(8 * b, 8 * b, 1), _conv_dw(8 * b, 16 * b, 2),
            _conv_dw(16 * b, 16 * b, 1))
        self.extras = nn.ModuleList([nn.Sequential(
            nn.Conv2d(16 * b, 4 * b, 1), nn.ReLU(), _separable(4 * b, 16 * b, stride=2),
            nn.ReLU())])
        widths = (4 * b, 8 * b, 16 * b)
        anchors = [len(m) for m in MIN_BOXES]
        self.classification_headers = nn.ModuleList(
            [_separable(c, k * num_classes) for c, k in zip(widths, anchors)]
            + [nn.Conv2d(16 * b, anchors[3] * num_classes, 3, padding=1)])
        self.regression_headers = nn.ModuleList(
            [_separable(c, k * 4) for c, k in zip(widths, anchors)]
            + [nn.Conv2d(16 * b, anchors[3] * 4, 3, padding=1)])

    def _head(self, i: int, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # channels-last, then (cell, prior) flattened: the priors' row-major order
        n = x.shape[0]
        logits = self.classification_headers[i](x).permute(0, 2, 3, 1).reshape(
            n, -1, self.num_classes)
        deltas = self.regression_headers[i](x).permute(0, 2, 3, 1).reshape(n, -1, 4)
        return logits, deltas

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        outs = []
        start = 0
        for i, stop in enumerate(self.TAPS):
            for layer in self.base_net[start:stop]:
                x = layer(x)
            outs.append(self._head(i, x))
            start = stop
        x = self.extras[0](x)
        outs.append(self._head(len(self.TAPS), x))
        return torch.cat([o[0] for o in outs], 1), torch.cat([o[1] for o in outs], 1)


def ultraface_priors(width: int, height: int) -> torch.Tensor:
    """The priors [P, 4] (cx, cy, w, h as fractions of the input) for a `width` x `height`
    input, in the heads' order: level by level, row by row, cell by cell, size by size.

    Upstream's rule: a level of stride s has ceil(side / s) cells per side (which is what
    the stride-2, padding-1 convolutions give), centres at (i + 0.5) / cells, and each
    prior side is min_box / width across and min_box / height down, clamped to [0, 1] as
    upstream does (256 px is taller than a 240 px input)."""
    levels = []
    for stride, sides in zip(STRIDES, MIN_BOXES):
        fw, fh = math.ceil(width / stride), math.ceil(height / stride)
        cx = (torch.arange(fw, dtype=torch.float64) + 0.5) / fw
        cy = (torch.arange(fh, dtype=torch.float64) + 0.5) / fh
        wh = torch.tensor([[s / width, s / height] for s in sides], dtype=torch.float64)
        k = len(sides)
        centres = torch.stack(torch.meshgrid(cy, cx, indexing="ij")[::-1], -1)  # [fh, fw, 2]
        levels.append(torch.cat((centres[:, :, None].expand(fh, fw, k, 2),
                                 wh.expand(fh, fw, k, 2)), -1).reshape(-1, 4))
    # float64 first, as upstream's Python floats, then float32 as its torch.tensor
    return torch.cat(levels).clamp_(0.0, 1.0).float()


def decode_boxes(deltas: torch.Tensor, priors: torch.Tensor, center_variance: float = 0.1,
                 size_variance: float = 0.2) -> torch.Tensor:
    """SSD box decoding: deltas [..., P, 4] against priors [P, 4] (cx, cy, w, h) -> corner
    boxes [..., P, 4] (x1, y1, x2, y2) as fractions of the input; like upstream, not
    clipped, so a face at the border may reach a little past 0 or 1."""
    centres = deltas[..., :2] * center_variance * priors[..., 2:] + priors[..., :2]
    sizes = torch.exp(deltas[..., 2:] * size_variance) * priors[..., 2:]
    return torch.cat((centres - sizes / 2, centres + sizes / 2), -1)


@MODELS.register("ultraface_rfb")
def ultraface_rfb(*, num_classes: int = 2) -> UltraFace:
    """Ultra-Light RFB-320 (Linzaer, MIT): the trunk with a receptive field block; loads
    `version-RFB-320.pth` strictly."""
    return UltraFace(rfb=True, num_classes=num_classes)


@MODELS.register("ultraface_slim")
def ultraface_slim(*, num_classes: int = 2) -> UltraFace:
    """Ultra-Light slim-320 (Linzaer, MIT): the plain depthwise trunk; loads
    `version-slim-320.pth` strictly."""
    return UltraFace(rfb=False, num_classes=num_classes)
