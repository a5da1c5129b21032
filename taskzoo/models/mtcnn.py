"""MTCNN (Zhang et al. 2016): the three cascaded face networks P-Net, R-Net and O-Net.

The architecture of facenet-pytorch 2.6.0 (MIT, Tim Esler), itself a port of the TensorFlow
MTCNN of davidsandberg/facenet (which converted the authors' Caffe models). Module names are
the upstream ones (`conv1`, `prelu1`, `dense5_1`, ...) so that the published `pnet.pt`,
`rnet.pt` and `onet.pt` load strictly, key for key; `mtcnn` holds the three under `pnet.`,
`rnet.` and `onet.`. Pooling has no weights but keeps its upstream name too.

Inputs are float images normalised as the cascade does, (x - 127.5) / 128, RGB, channels
first. Each forward returns what the upstream one does:

- P-Net, fully convolutional (12x12 windows at stride 2): (regression [B, 4, h, w],
  probability [B, 2, h, w]); channel 1 of the probability is "face".
- R-Net on 24x24 crops: (regression [B, 4], probability [B, 2]).
- O-Net on 48x48 crops: (regression [B, 4], landmarks [B, 10], probability [B, 2]); the
  landmarks are the five x fractions of the crop, then the five y fractions.

The cascade itself (pyramid, non-maximum suppression, cropping) is in
`taskzoo.tasks.faces.mtcnn`.

    >>> net = mtcnn_pnet()
    >>> reg, prob = net(torch.zeros(1, 3, 12, 12))
    >>> tuple(reg.shape), tuple(prob.shape)
    ((1, 4, 1, 1), (1, 2, 1, 1))
"""

from __future__ import annotations

import torch
from torch import nn

from taskzoo.models import MODELS


def _flatten_like_tensorflow(x: torch.Tensor) -> torch.Tensor:
    # the dense weights were converted from TensorFlow, which flattens (width, height,
    # channels) in that order: transposing first keeps the published weights valid
    return x.permute(0, 3, 2, 1).flatten(1)


class PNet(nn.Module):
    """Proposal network: 3 convolutions, a face score and a box regression per 12x12 window."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 10, kernel_size=3)
        self.prelu1 = nn.PReLU(10)
        self.pool1 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv2 = nn.Conv2d(10, 16, kernel_size=3)
        self.prelu2 = nn.PReLU(16)
        self.conv3 = nn.Conv2d(16, 32, kernel_size=3)
        self.prelu3 = nn.PReLU(32)
        self.conv4_1 = nn.Conv2d(32, 2, kernel_size=1)
        self.conv4_2 = nn.Conv2d(32, 4, kernel_size=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.prelu3(self.conv3(self.prelu2(self.conv2(x))))
        return self.conv4_2(x), torch.softmax(self.conv4_1(x), dim=1)


class RNet(nn.Module):
    """Refinement network on 24x24 crops: a face score and a box regression per crop."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 28, kernel_size=3)
        self.prelu1 = nn.PReLU(28)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2 = nn.Conv2d(28, 48, kernel_size=3)
        self.prelu2 = nn.PReLU(48)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3 = nn.Conv2d(48, 64, kernel_size=2)
        self.prelu3 = nn.PReLU(64)
        self.dense4 = nn.Linear(576, 128)
        self.prelu4 = nn.PReLU(128)
        self.dense5_1 = nn.Linear(128, 2)
        self.dense5_2 = nn.Linear(128, 4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.prelu3(self.conv3(x))
        x = self.prelu4(self.dense4(_flatten_like_tensorflow(x)))
        return self.dense5_2(x), torch.softmax(self.dense5_1(x), dim=1)


class ONet(nn.Module):
    """Output network on 48x48 crops: a face score, a box regression and 5 landmarks."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, kernel_size=3)
        self.prelu1 = nn.PReLU(32)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2 = nn.Conv2d(32, 64, kernel_size=3)
        self.prelu2 = nn.PReLU(64)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3 = nn.Conv2d(64, 64, kernel_size=3)
        self.prelu3 = nn.PReLU(64)
        self.pool3 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv4 = nn.Conv2d(64, 128, kernel_size=2)
        self.prelu4 = nn.PReLU(128)
        self.dense5 = nn.Linear(1152, 256)
        self.prelu5 = nn.PReLU(256)
        self.dense6_1 = nn.Linear(256, 2)
        self.dense6_2 = nn.Linear(256, 4)
        self.dense6_3 = nn.Linear(256, 10)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.pool3(self.prelu3(self.conv3(x)))
        x = self.prelu4(self.conv4(x))
        x = self.prelu5(self.dense5(_flatten_like_tensorflow(x)))
        return self.dense6_2(x), self.dense6_3(x), torch.softmax(self.dense6_1(x), dim=1)


class MTCNN(nn.Module):
    """The three networks in one module (one state dict, one weights file); the cascade that
    runs them is `taskzoo.tasks.faces.mtcnn.detect`."""

    def __init__(self) -> None:
        super().__init__()
        self.pnet = PNet()
        self.rnet = RNet()
        self.onet = ONet()

    def forward(self, crops: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """O-Net on 48x48 crops: the last stage, the one that gives landmarks."""
        return self.onet(crops)


@MODELS.register("mtcnn_pnet")
def mtcnn_pnet() -> PNet:
    """P-Net alone; loads facenet-pytorch's `pnet.pt` strictly."""
    return PNet()


@MODELS.register("mtcnn_rnet")
def mtcnn_rnet() -> RNet:
    """R-Net alone; loads facenet-pytorch's `rnet.pt` strictly."""
    return RNet()


@MODELS.register("mtcnn_onet")
def mtcnn_onet() -> ONet:
    """O-Net alone; loads facenet-pytorch's `onet.pt` strictly."""
    return ONet()


@MODELS.register("mtcnn")
def mtcnn() -> MTCNN:
    """P-, R- and O-Net together, keys prefixed `pnet.`, `rnet.`, `onet.`."""
    return MTCNN()
