"""EfficientNet-Lite0/1/2 (Google's TensorFlow EfficientNet-Lite, 2020; Tan & Le 2019),
written here so that its state dict is the published one key for key.

EfficientNet-B0's layout made friendly to mobile accelerators and quantisation: no
squeeze-and-excitation, ReLU6 instead of swish, and the stem (32 channels) and head (1280
channels, the first and last stages' repeats too) kept fixed while the width and depth
multipliers scale the rest.

    stem    3x3 conv, stride 2, 32 channels, BN, ReLU6          (`_conv_stem`, `_bn0`)
    blocks  MBConv: 1x1 expand (x6, none in the first stage), BN, ReLU6, depthwise kxk,
            BN, ReLU6, 1x1 project, BN; the input added back where stride 1 and the
            channels agree (with stochastic depth in training)   (`_blocks.N.*`)
    head    1x1 conv to 1280, BN, ReLU6; average pool, dropout, linear (`_conv_head`,
            `_bn1`, `_fc`)

    stage  repeats  kernel  stride  expand  channels (Lite0)
    1      1        3       1       1       16
    2      2        3       2       6       24
    3      2        5       2       6       40     <- features, stride 8
    4      3        3       2       6       80
    5      3        5       1       6       112    <- features, stride 16
    6      4        5       2       6       192
    7      1        3       1       6       320    -> head conv 1280 <- features, stride 32

    model               width  depth  image  dropout  params (1000 classes)  feature channels
    efficientnet_lite0  1.0    1.0    224    0.2      4,652,008              40/112/1280
    efficientnet_lite1  1.0    1.1    240    0.2      5,416,680              40/112/1280
    efficientnet_lite2  1.1    1.2    260    0.3      6,092,072              48/120/1280

Faithful to the TensorFlow graph the weights were trained in: BatchNorm eps 1e-3 and
momentum 0.01 (TF's decay 0.99), and TensorFlow's "SAME" padding: a stride-2 conv pads
one pixel more on the bottom and right than on the top and left (PyTorch's symmetric
padding would shift every map by half a pixel and change the logits). The weights expect
RGB scaled to (x - 127) / 128 (TF EfficientNet-Lite's MEAN_RGB and STDDEV_RGB), at the
model's image size: their card (`efficientnet_lite0.imagenet`) carries both.

Like the zoo's other CNNs (`taskzoo.models.cnn`): `features(x)` returns the maps at strides
8, 16 and 32 (`feature_channels`, `feature_strides`); `forward(x)` is
`forward_head(features(x)[-1])`; `head` is the final nn.Linear and `pre_logits` the
dropout before it (stored as `_fc` and `_dropout`, the published keys; assigning `head`
or `pre_logits` replaces those).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from taskzoo.models import MODELS

# (repeats, kernel, stride, expansion, output channels) of the seven stages, before scaling
STAGES = ((1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80),
          (3, 5, 1, 6, 112), (4, 5, 2, 6, 192), (1, 3, 1, 6, 320))
STEM, HEAD = 32, 1280  # fixed in the Lite models, whatever the width multiplier
FEATURE_STAGES = (2, 4)  # stages whose output is a feature map (strides 8 and 16), then the head
# name -> (width multiplier, depth multiplier, image side, dropout): Google's lite builder
VARIANTS = {"efficientnet_lite0": (1.0, 1.0, 224, 0.2),
            "efficientnet_lite1": (1.0, 1.1, 240, 0.2),
            "efficientnet_lite2": (1.1, 1.2, 260, 0.3)}
BN_EPS, BN_MOMENTUM = 1e-3, 0.01


def scaled_channels(channels: int, width: float, divisor: int = 8) -> int:
    """TensorFlow's rounding of `channels * width` to a multiple of `divisor`, never more
    than 10 % below the product.

    >>> scaled_channels(40, 1.1), scaled_channels(112, 1.1), scaled_channels(16, 1.1)
    (48, 120, 16)
    """
    target = channels * width
    rounded = max(divisor, int(target + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * target else rounded


class SameConv2d(nn.Conv2d):
    """A bias-free conv with TensorFlow's "SAME" padding for any input size. Stride 1 with
    an odd kernel pads symmetrically (PyTorch's own padding, the fast path); a strided conv
    pads at run time, the odd pixel on the bottom and right, as TensorFlow does."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1) -> None:
        super().__init__(cin, cout, kernel, stride=stride,
                         padding=(kernel - 1) // 2 if stride == 1 else 0, groups=groups,
                         bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride[0] > 1:
            pads = []
            for size, k, s in ((x.shape[-1], self.kernel_size[1], self.stride[1]),
                               (x.shape[-2], self.kernel_size[0], self.stride[0])):
                total = max((math.ceil(size / s) - 1) * s + k - size, 0)
                pads += [total // 2, total - total // 2]
            x = F.pad(x, pads)
        return super().forward(x)


def _bn(channels: int, momentum: float) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=momentum)


class MBConv(nn.Module):
    """The inverted-residual block without squeeze-and-excitation. Attribute names are the
    published state dict's (`_expand_conv`, `_bn0`, `_depthwise_conv`, `_bn1`, ...)."""

    def __init__(self, cin: int, cout: int, *, kernel: int, stride: int, expand: int,
                 bn_momentum: float, drop_rate: float = 0.0) -> None:
        super().__init__()
        mid = cin * expand
        self._expand_conv = nn.Conv2d(cin, mid, 1, bias=False) if expand != 1 else None
        self._bn0 = _bn(mid, bn_momentum) if expand != 1 else None
        self._depthwise_conv = SameConv2d(mid, mid, kernel, stride, groups=mid)
        self._bn1 = _bn(mid, bn_momentum)
        self._project_conv = nn.Conv2d(mid, cout, 1, bias=False)
        self._bn2 = _bn(cout, bn_momentum)
        self.residual = stride == 1 and cin == cout
        self.drop_rate = drop_rate  # stochastic depth: the probability of skipping the block

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        x = inputs
        if self._expand_conv is not None:
            x = F.relu6(self._bn0(self._expand_conv(x)))
        x = F.relu6(self._bn1(self._depthwise_conv(x)))
        x = self._bn2(self._project_conv(x))
        if not self.residual:
            return x
        if self.training and self.drop_rate > 0:
            keep = 1.0 - self.drop_rate  # a whole sample's branch is dropped, the rest rescaled
            mask = torch.rand(x.shape[0], 1, 1, 1, dtype=x.dtype, device=x.device) < keep
            x = x * mask / keep
        return x + inputs


class EfficientNetLite(nn.Module):
    """Stem -> MBConv blocks -> head conv -> pool, dropout, linear (see the module doc)."""

    _ALIASES = {"head": "_fc", "pre_logits": "_dropout"}  # public name -> published key

    def __init__(self, *, width: float, depth: float, in_channels: int, num_classes: int,
                 dropout: float, drop_connect: float, bn_momentum: float) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.min_size = 1  # "SAME" padding: every size gives at least one cell per map
        self._conv_stem = SameConv2d(in_channels, STEM, 3, 2)
        self._bn0 = _bn(STEM, bn_momentum)
        blocks: list[MBConv] = []
        ends, channels = [], []
        cin = STEM
        for i, (repeats, kernel, stride, expand, cout) in enumerate(STAGES):
            cout = scaled_channels(cout, width)
            if 0 < i < len(STAGES) - 1:  # the first and last stages keep their repeats
                repeats = math.ceil(depth * repeats)
            for r in range(repeats):
                blocks.append(MBConv(cin, cout, kernel=kernel, stride=stride if r == 0 else 1,
                                     expand=expand, bn_momentum=bn_momentum))
                cin = cout
            ends.append(len(blocks) - 1)
            channels.append(cout)
        for idx, block in enumerate(blocks):  # deeper blocks are skipped more often
            block.drop_rate = drop_connect * idx / len(blocks)
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = nn.Conv2d(cin, HEAD, 1, bias=False)
        self._bn1 = _bn(HEAD, bn_momentum)
        self._dropout = nn.Dropout(dropout)
        self._fc = nn.Linear(HEAD, num_classes)
        self.stage_ends = tuple(ends)  # index of each stage's last block
        self.feature_blocks = tuple(ends[s] for s in FEATURE_STAGES)
        self.feature_channels = (*(channels[s] for s in FEATURE_STAGES), HEAD)
        self.feature_strides = (8, 16, 32)
        _init(self)

    @property
    def head(self) -> nn.Module:
        return self._fc

    @property
    def pre_logits(self) -> nn.Module:
        return self._dropout

    def __setattr__(self, name: str, value: Any) -> None:
        # `model.head = nn.Linear(...)` (a new head, or nn.Identity() to drop it) must
        # replace the module stored under the published key, not add a second one
        super().__setattr__(self._ALIASES.get(name, name), value)

    def _check(self, x: torch.Tensor) -> None:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"{type(self).__name__} expects images [B, {self.in_channels}, H, W], "
                             f"got a tensor of shape {tuple(x.shape)}")
        if min(x.shape[-2:]) < 1:
            raise ValueError(f"{type(self).__name__} got an empty image {tuple(x.shape[-2:])}")

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The maps at strides 8, 16 and 32 [B, C_i, ceil(H / s_i), ceil(W / s_i)]; the last
        is the head conv's 1280 channels (what the classifier pools)."""
        self._check(x)
        x = F.relu6(self._bn0(self._conv_stem(x)))
        maps = []
        for idx, block in enumerate(self._blocks):
            x = block(x)
            if idx in self.feature_blocks:
                maps.append(x)
        maps.append(F.relu6(self._bn1(self._conv_head(x))))
        return maps

    def stage_maps(self, x: torch.Tensor, stages: tuple[int, ...]) -> list[torch.Tensor]:
        """The maps where `stages` end, in the order asked: 0 is the stem (stride 2, after
        its ReLU6), 1-7 the seven stages' last blocks (strides 2, 4, 8, 16, 16, 32, 32;
        linear, as the blocks project), 8 the head conv. Runs only as deep as the deepest
        stage asked (a perceptual loss reads early maps without paying for the head).

        >>> net = efficientnet_lite0()
        >>> [m.shape[1] for m in net.stage_maps(torch.zeros(1, 3, 64, 64), (0, 2, 8))]
        [32, 24, 1280]
        """
        self._check(x)
        bad = [s for s in stages if not 0 <= s <= len(self.stage_ends) + 1]
        if bad or not stages:
            raise ValueError(f"stages must be in 0..{len(self.stage_ends) + 1}, got {stages}")
        ends = {0: -1, **{i + 1: e for i, e in enumerate(self.stage_ends)}}
        found: dict[int, torch.Tensor] = {}
        x = F.relu6(self._bn0(self._conv_stem(x)))
        found[0] = x
        deepest = max(stages)
        last = self.stage_ends[-1] if deepest > len(self.stage_ends) else ends[deepest]
        for idx, block in enumerate(self._blocks[:last + 1]):
            x = block(x)
            found.update({s: x for s, e in ends.items() if e == idx})
        if deepest > len(self.stage_ends):
            found[deepest] = F.relu6(self._bn1(self._conv_head(x)))
        return [found[s] for s in stages]

    def layer_groups(self) -> list[list[nn.Parameter]]:
        """Parameters from the input up, for layer-wise learning rates: the stem with the
        first stage, each later stage, the head conv; the classifier (`head`) last."""
        stages, start = [], 0
        for end in self.stage_ends:
            stages.append([p for b in self._blocks[start:end + 1] for p in b.parameters()])
            start = end + 1
        stem = [*self._conv_stem.parameters(), *self._bn0.parameters()]
        groups = [stem + stages[0], *stages[1:]]  # the first stage is a single small block
        groups.append([*self._conv_head.parameters(), *self._bn1.parameters()])
        groups.append(list(self._fc.parameters()))
        return groups

    def forward_head(self, last: torch.Tensor) -> torch.Tensor:
        """Logits from the last feature map: global average pool, dropout, linear."""
        return self._fc(self._dropout(torch.flatten(F.adaptive_avg_pool2d(last, 1), 1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.features(x)[-1])


def _init(model: nn.Module) -> None:
    """Random initialisation as TensorFlow's EfficientNet: convs normal with fan-out
    variance (He), the linear layer uniform in +-1/sqrt(out), BatchNorm 1 and 0."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            bound = 1.0 / math.sqrt(m.out_features)
            nn.init.uniform_(m.weight, -bound, bound)
            nn.init.zeros_(m.bias)


def _lite(name: str, **kwargs: Any) -> EfficientNetLite:
    width, depth, _, _ = VARIANTS[name]
    return EfficientNetLite(width=width, depth=depth, **kwargs)


@MODELS.register("efficientnet_lite0")
def efficientnet_lite0(*, in_channels: int = 3, num_classes: int = 1000, dropout: float = 0.2,
                       drop_connect: float = 0.2,
                       bn_momentum: float = BN_MOMENTUM) -> EfficientNetLite:
    """EfficientNet-Lite0, 224 px: 4,652,008 params (3x224x224, 1000 classes)."""
    return _lite("efficientnet_lite0", in_channels=in_channels, num_classes=num_classes,
                 dropout=dropout, drop_connect=drop_connect, bn_momentum=bn_momentum)


@MODELS.register("efficientnet_lite1")
def efficientnet_lite1(*, in_channels: int = 3, num_classes: int = 1000, dropout: float = 0.2,
                       drop_connect: float = 0.2,
                       bn_momentum: float = BN_MOMENTUM) -> EfficientNetLite:
    """EfficientNet-Lite1, 240 px: 5,416,680 params (3x240x240, 1000 classes)."""
    return _lite("efficientnet_lite1", in_channels=in_channels, num_classes=num_classes,
                 dropout=dropout, drop_connect=drop_connect, bn_momentum=bn_momentum)


@MODELS.register("efficientnet_lite2")
def efficientnet_lite2(*, in_channels: int = 3, num_classes: int = 1000, dropout: float = 0.3,
                       drop_connect: float = 0.2,
                       bn_momentum: float = BN_MOMENTUM) -> EfficientNetLite:
    """EfficientNet-Lite2, 260 px: 6,092,072 params (3x260x260, 1000 classes)."""
    return _lite("efficientnet_lite2", in_channels=in_channels, num_classes=num_classes,
                 dropout=dropout, drop_connect=drop_connect, bn_momentum=bn_momentum)


__all__ = ["EfficientNetLite", "MBConv", "SameConv2d", "VARIANTS", "efficientnet_lite0",
           "efficientnet_lite1", "efficientnet_lite2", "scaled_channels"]
