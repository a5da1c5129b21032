"""Image classifiers that double as backbones: small CNNs, VGG, ResNet-20 and torchvision nets.

Inputs are float images [B, C, H, W], already normalised; outputs are logits
[B, num_classes]. Every model is an `ImageClassifier`:

    stem -> stages -> global average pool -> pre_logits -> head (an nn.Linear)

- `features(x)` returns the maps of the last three stages, in increasing stride (what a
  detection neck or a captioning attention grid consumes); `feature_channels` and
  `feature_strides` describe them. A map of stride s has ceil(H / s) x ceil(W / s) cells
  for the padded-conv downsampling of the ResNets and MobileNetV3, floor(H / s) for the
  max-pooling of `cnn_small` and `vgg`.
- `forward(x)` is `forward_head(features(x)[-1])`: nothing is computed twice.
- `head` is the final nn.Linear; a head of another size can be swapped in.
- `min_size` is the smallest image side accepted; smaller inputs raise ValueError instead
  of a pooling layer shrinking a side to 0 (global pooling makes every larger size work).

`small_input=True` (the default) adapts torchvision's ImageNet stems to 28-64 px images:
the ResNets get a 3x3 stride-1 stem conv and no max-pool (feature strides 2/4/8), and
MobileNetV3's first conv gets stride 1 (4/8/16). `small_input=False` keeps the standard
stems (8/16/32), for 224-416 px inputs such as detection.

    model                feature strides     channels        min side  params (1x28x28, 10)
    cnn_small            1/2/4               32/64/128       4         278,890
    vgg                  1/2/4               32/64/128       4         288,170
    resnet20             1/2/4               16/32/64        1         269,434
    resnet18, resnet34   2/4/8 (8/16/32)     128/256/512     1         11.17M, 21.28M
    mobilenet_v3_small   4/8/16 (8/16/32)    24/48/576       1         1.53M

Weights: kaiming-normal convs (fan_out) and BN 1/0, as torchvision and He et al. do.
`zero_init_residual` (last BN gamma of each residual branch at 0) defaults to False, as in
torchvision: in a 10-epoch Fashion-MNIST check ResNet-20 reached 93.57/93.58% test accuracy
without it and 93.17/92.77% with it (two seeds each).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from taskzoo.models import MODELS


class ImageClassifier(nn.Module):
    """stem -> stages -> global average pool -> pre_logits -> head, with `features(x)`."""

    def __init__(
        self, *, in_channels: int, stem: nn.Module, stages: Sequence[nn.Module],
        feature_channels: Sequence[int], feature_strides: Sequence[int], head: nn.Linear,
        pre_logits: nn.Module | None = None, min_size: int = 1,
    ) -> None:
        super().__init__()
        if len(stages) < 3:
            raise ValueError(f"a backbone needs at least 3 stages, got {len(stages)}")
        self.in_channels = in_channels
        self.stem = stem
        self.stages = nn.ModuleList(stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.pre_logits = pre_logits if pre_logits is not None else nn.Identity()
        self.head = head
        self.feature_channels: tuple[int, int, int] = (
            feature_channels[-3], feature_channels[-2], feature_channels[-1])
        self.feature_strides: tuple[int, int, int] = (
            feature_strides[-3], feature_strides[-2], feature_strides[-1])
        self.min_size = min_size

    def _check(self, x: torch.Tensor) -> None:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"{type(self).__name__} expects images [B, {self.in_channels}, H, W], "
                             f"got a tensor of shape {tuple(x.shape)}")
        h, w = x.shape[-2:]
        if h < self.min_size or w < self.min_size:
            raise ValueError(f"{type(self).__name__} needs images of at least {self.min_size}x"
                             f"{self.min_size} pixels, got {h}x{w}")

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The maps of the last three stages [B, C_i, H / s_i, W / s_i], strides increasing."""
        self._check(x)
        x = self.stem(x)
        maps = []
        for stage in self.stages:
            x = stage(x)
            maps.append(x)
        return maps[-3:]

    def forward_head(self, last: torch.Tensor) -> torch.Tensor:
        """Logits from the last feature map: global average pool, pre_logits, head."""
        return self.head(self.pre_logits(torch.flatten(self.pool(last), 1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.features(x)[-1])


def conv_bn_relu(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    """A 3x3 conv (no bias: the BN's shift replaces it), BatchNorm and ReLU."""
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


def init_weights(model: nn.Module) -> None:
    """torchvision's (and He et al.'s) init: kaiming-normal convs (fan_out), BN 1 and 0.
    Linear layers keep PyTorch's default, as torchvision's ResNet does."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class PlainCNN(ImageClassifier):
    """Three stages of 3x3 conv-BN-ReLU blocks, 2x2 max-pool between stages (cnn_small, vgg)."""

    def __init__(self, *, in_channels: int, num_classes: int, stage_widths: Sequence[int],
                 stage_depths: Sequence[int], dropout: float) -> None:
        stages: list[nn.Module] = []
        cin = in_channels
        for i, (width, depth) in enumerate(zip(stage_widths, stage_depths)):
            if depth < 1:
                raise ValueError(f"every stage needs at least one conv, got depth {depth}")
            layers: list[nn.Module] = [nn.MaxPool2d(2)] if i else []
            for _ in range(depth):
                layers.append(conv_bn_relu(cin, width))
                cin = width
            stages.append(nn.Sequential(*layers))
        pools = len(stages) - 1
        super().__init__(
            in_channels=in_channels, stem=nn.Identity(), stages=stages,
            feature_channels=stage_widths, feature_strides=[2 ** i for i in range(pools + 1)],
            head=nn.Linear(cin, num_classes), pre_logits=nn.Dropout(dropout), min_size=2 ** pools)
        init_weights(self)


@MODELS.register("cnn_small", aliases=("small_cnn",))
def cnn_small(*, in_channels: int = 1, num_classes: int = 10, width: int = 32,
              dropout: float = 0.1) -> PlainCNN:
    """A fast conv net for 28x28 images, 1+2+2 3x3 convs: 278,890 params (1x28x28, 10 classes)."""
    w = width
    return PlainCNN(in_channels=in_channels, num_classes=num_classes,
                    stage_widths=(w, 2 * w, 4 * w), stage_depths=(1, 2, 2), dropout=dropout)


@MODELS.register("vgg", aliases=("vgg_small",))
def vgg(*, in_channels: int = 1, num_classes: int = 10, width: int = 32, depth: int = 2,
        dropout: float = 0.1) -> PlainCNN:
    """VGG-style with BatchNorm, 3 stages of `depth` convs: 288,170 params (1x28x28, 10 classes)."""
    w = width
    return PlainCNN(in_channels=in_channels, num_classes=num_classes,
                    stage_widths=(w, 2 * w, 4 * w), stage_depths=(depth,) * 3, dropout=dropout)


class CifarBasicBlock(nn.Module):
    """He et al. 2016's CIFAR basic block with an option-A shortcut: identity, or stride-2
    subsampling with zero-padded extra channels (parameter-free) where the shape changes."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.stride = stride
        self.pad = cout - cin

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)
        out = self.bn2(self.conv2(out))
        shortcut = x
        if self.stride != 1:  # keeps ceil(n / 2) cells, as the padded stride-2 conv does
            shortcut = shortcut[:, :, ::self.stride, ::self.stride]
        if self.pad:  # adding into the first channels = adding the zero-padded shortcut, and
            # keeps out's memory format (F.pad + add fell back to NCHW: 3x slower channels_last)
            out[:, :shortcut.shape[1]] += shortcut
        else:
            out += shortcut
        return F.relu(out, inplace=True)


class CifarResNet(ImageClassifier):
    """He et al. 2016 (section 4.2): a 3x3 conv, then 3 stages of n basic blocks."""

    def __init__(self, *, in_channels: int, num_classes: int, width: int, blocks_per_stage: int,
                 zero_init_residual: bool) -> None:
        widths = (width, 2 * width, 4 * width)
        stages: list[nn.Module] = []
        cin = width
        for i, cout in enumerate(widths):
            blocks = [CifarBasicBlock(cin if b == 0 else cout, cout, 2 if (i and b == 0) else 1)
                      for b in range(blocks_per_stage)]
            stages.append(nn.Sequential(*blocks))
            cin = cout
        super().__init__(in_channels=in_channels, stem=conv_bn_relu(in_channels, width),
                         stages=stages, feature_channels=widths, feature_strides=(1, 2, 4),
                         head=nn.Linear(cin, num_classes))
        init_weights(self)
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, CifarBasicBlock):
                    nn.init.zeros_(m.bn2.weight)


@MODELS.register("resnet20", aliases=("resnet20_cifar",))
def resnet20(*, in_channels: int = 3, num_classes: int = 10, width: int = 16,
             zero_init_residual: bool = False) -> CifarResNet:
    """ResNet-20 for CIFAR (He et al. 2016), option A: 269,434 params (1x28x28, 10 classes)."""
    return CifarResNet(in_channels=in_channels, num_classes=num_classes, width=width,
                       blocks_per_stage=3, zero_init_residual=zero_init_residual)


def _torchvision_resnet(arch: str, *, in_channels: int, num_classes: int, small_input: bool,
                        zero_init_residual: bool) -> ImageClassifier:
    import torchvision  # lazily: importing taskzoo.models stays light

    net = getattr(torchvision.models, arch)(weights=None, num_classes=num_classes,
                                            zero_init_residual=zero_init_residual)
    if small_input:  # the CIFAR variant of the ImageNet ResNets: 3x3 stride-1 stem, no max-pool
        net.conv1 = nn.Conv2d(in_channels, 64, 3, stride=1, padding=1, bias=False)
        net.maxpool = nn.Identity()
    elif in_channels != 3:
        net.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
    if small_input or in_channels != 3:  # a new conv gets torchvision's init
        nn.init.kaiming_normal_(net.conv1.weight, mode="fan_out", nonlinearity="relu")
    s = 1 if small_input else 4
    return ImageClassifier(
        in_channels=in_channels, stem=nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool),
        stages=[net.layer1, net.layer2, net.layer3, net.layer4],
        feature_channels=(128, 256, 512), feature_strides=(2 * s, 4 * s, 8 * s), head=net.fc)


@MODELS.register("resnet18")
def resnet18(*, in_channels: int = 3, num_classes: int = 10, small_input: bool = True,
             zero_init_residual: bool = False) -> ImageClassifier:
    """torchvision's ResNet-18, small-input stem: 11,172,810 params (1x28x28, 10 classes)."""
    return _torchvision_resnet("resnet18", in_channels=in_channels, num_classes=num_classes,
                               small_input=small_input, zero_init_residual=zero_init_residual)


@MODELS.register("resnet34")
def resnet34(*, in_channels: int = 3, num_classes: int = 10, small_input: bool = True,
             zero_init_residual: bool = False) -> ImageClassifier:
    """torchvision's ResNet-34, small-input stem: 21,280,970 params (1x28x28, 10 classes)."""
    return _torchvision_resnet("resnet34", in_channels=in_channels, num_classes=num_classes,
                               small_input=small_input, zero_init_residual=zero_init_residual)


@MODELS.register("mobilenet_v3_small", aliases=("mobilenetv3_small",))
def mobilenet_v3_small(*, in_channels: int = 3, num_classes: int = 10, small_input: bool = True,
                       dropout: float = 0.2) -> ImageClassifier:
    """torchvision's MobileNetV3-Small, stride-1 stem: 1,527,818 params (1x28x28, 10 classes)."""
    import torchvision

    net = torchvision.models.mobilenet_v3_small(weights=None, num_classes=num_classes,
                                                dropout=dropout)
    first = net.features[0][0]
    stride = 1 if small_input else 2
    if small_input or in_channels != 3:
        first = net.features[0][0] = nn.Conv2d(in_channels, first.out_channels, 3, stride=stride,
                                               padding=1, bias=False)
        nn.init.kaiming_normal_(first.weight, mode="fan_out")  # as torchvision does
    blocks = net.features
    # group torchvision's blocks by output stride: 4 (block 1), 8 (2-3), 16 (4-8), 32 (9-12)
    stages = [blocks[1], blocks[2:4], blocks[4:9], blocks[9:]]
    s = stride * 2
    classifier = net.classifier
    return ImageClassifier(
        in_channels=in_channels, stem=blocks[0], stages=stages,
        feature_channels=(blocks[3].out_channels, blocks[8].out_channels,
                          blocks[12].out_channels),
        feature_strides=(2 * s, 4 * s, 8 * s), head=classifier[3], pre_logits=classifier[:3])
