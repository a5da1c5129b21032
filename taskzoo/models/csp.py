"""CSP-Darknet: YOLOv8's backbone (conv stem, C2f stages, SPPF) as a zoo `ImageClassifier`.

    stem (3x3 s2) -> [3x3 s2 conv + C2f] x 4 (strides 4/8/16/32) -> SPPF -> pool -> head

At the default width 0.25 and depth 0.33 this is YOLOv8n's backbone: stage widths
16/32/64/128/256 (64..1024 times the width, rounded to a multiple of 8), C2f blocks 1/2/2/1
(3/6/6/3 times the depth). `features(x)` gives the stride 8/16/32 maps (64/128/256 channels)
that `yolo_tiny`'s neck consumes.

Why it is in the zoo: `yolo_tiny` is trained from scratch on a 2-core CPU, and its backbone
must train well from random init, quickly. Measured here (torch 2.14, 2 threads, forward +
backward of the three feature maps, batch 16 at 352x352, quiet machine): this backbone
0.46 s (1.27M params), torchvision's MobileNetV3-Small with the standard stem 0.48 s
(1.52M), ResNet-18 2.6 s (11.2M). MobileNetV3-Small costs as much (depthwise convs are
memory-bound on CPU) but gives a stride-8 map of only 24 channels and an ImageNet-tuned
design (SE, hard-swish, a 576-channel last stage); dense 3x3 convs with SiLU and BN are
what YOLOv8 trains from scratch.

`small_input=True` (the zoo's default, for 28-64 px classification) makes the stem conv
stride 1: feature strides 4/8/16. `small_input=False` keeps strides 8/16/32 (detection).
Init: PyTorch's default conv init and BatchNorm eps 1e-3, as Ultralytics trains YOLOv8 from
scratch, but PyTorch's BatchNorm momentum 0.1, not Ultralytics' 0.03: our runs are a few
hundred steps, and with 0.03 the running statistics lagged the weights so far that a
detector overfitting two images for 150 steps scored 0.95 in train mode and < 0.05 in eval
mode (0.1: tests/test_yolo.py's overfitting test passes).
"""

from __future__ import annotations

import math
from functools import partial

import torch
from torch import nn

from taskzoo.models import MODELS
from taskzoo.models.cnn import ImageClassifier

_norm = partial(nn.BatchNorm2d, eps=1e-3)


def conv(cin: int, cout: int, k: int = 1, s: int = 1) -> nn.Module:
    """YOLOv8's Conv: conv (no bias) -> BatchNorm(eps 1e-3) -> SiLU."""
    from torchvision.ops import Conv2dNormActivation  # lazily: importing the zoo stays light

    return Conv2dNormActivation(cin, cout, k, s, activation_layer=nn.SiLU,
                                norm_layer=_norm)


def dwconv(channels: int, k: int = 3, s: int = 1) -> nn.Module:
    """A depthwise conv -> BatchNorm -> SiLU (YOLOv8's DWConv with equal in and out)."""
    from torchvision.ops import Conv2dNormActivation

    return Conv2dNormActivation(channels, channels, k, s, groups=channels,
                                activation_layer=nn.SiLU,
                                norm_layer=_norm)


class Bottleneck(nn.Module):
    """Two 3x3 convs, with a residual connection when `shortcut`."""

    def __init__(self, channels: int, shortcut: bool) -> None:
        super().__init__()
        self.cv1 = conv(channels, channels, 3)
        self.cv2 = conv(channels, channels, 3)
        self.shortcut = shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.cv2(self.cv1(x))
        return x + y if self.shortcut else y


class C2f(nn.Module):
    """YOLOv8's CSP block: 1x1 conv split in two halves, n bottlenecks chained on the second
    half, every intermediate map concatenated, fused by a 1x1 conv."""

    def __init__(self, cin: int, cout: int, n: int = 1, shortcut: bool = True) -> None:
        super().__init__()
        self.hidden = cout // 2
        self.cv1 = conv(cin, 2 * self.hidden)
        self.blocks = nn.ModuleList(Bottleneck(self.hidden, shortcut) for _ in range(n))
        self.cv2 = conv((2 + n) * self.hidden, cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ys = list(self.cv1(x).chunk(2, 1))
        for block in self.blocks:
            ys.append(block(ys[-1]))
        return self.cv2(torch.cat(ys, 1))


class SPPF(nn.Module):
    """Spatial pyramid pooling, fast: three chained 5x5 max-pools, concatenated, 1x1 fused."""

    def __init__(self, cin: int, cout: int, k: int = 5) -> None:
        super().__init__()
        self.cv1 = conv(cin, cin // 2)
        self.cv2 = conv(cin // 2 * 4, cout)
        self.pool = nn.MaxPool2d(k, stride=1, padding=k // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ys = [self.cv1(x)]
        for _ in range(3):
            ys.append(self.pool(ys[-1]))
        return self.cv2(torch.cat(ys, 1))


@MODELS.register("csp_darknet", aliases=("cspdarknet",))
def csp_darknet(*, in_channels: int = 3, num_classes: int = 10, width: float = 0.25,
                depth: float = 0.33, small_input: bool = True) -> ImageClassifier:
    """YOLOv8's CSP-Darknet backbone (n scale by default): 1,275,226 params (3 channels, 10
    classes)."""
    if width <= 0 or depth <= 0:
        raise ValueError(f"width and depth must be positive, got {width} and {depth}")
    w = [max(8, math.ceil(c * width / 8) * 8) for c in (64, 128, 256, 512, 1024)]
    n = [max(1, round(k * depth)) for k in (3, 6, 6, 3)]
    stem = conv(in_channels, w[0], 3, 1 if small_input else 2)
    stages: list[nn.Module] = []
    for i in range(4):
        layers = [conv(w[i], w[i + 1], 3, 2), C2f(w[i + 1], w[i + 1], n[i], shortcut=True)]
        if i == 3:
            layers.append(SPPF(w[4], w[4]))
        stages.append(nn.Sequential(*layers))
    s = 2 if small_input else 4
    return ImageClassifier(in_channels=in_channels, stem=stem, stages=stages,
                           feature_channels=w[2:], feature_strides=(2 * s, 4 * s, 8 * s),
                           head=nn.Linear(w[4], num_classes))
