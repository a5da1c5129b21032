"""FaceResNet: dlib's 128-d face descriptor network, as face-api (TF.js) runs it.

dlib's `dlib_face_recognition_resnet_model_v1` (Davis King, published 99.38 % on LFW) is a
ResNet-29-like network on 150x150 RGB face chips; @vladmandic/face-api 1.7.15 (MIT) ships
it as TF.js weights and runs it with its own graph code (src/faceRecognitionNet). This is
that graph, re-written from reading it:

- input: RGB 0..255, minus the mean colour (122.782, 117.001, 104.298), divided by 255
- stem: 7x7 conv stride 2 without padding ("valid") -> scale -> ReLU, 3x3 max-pool stride 2
- 14 residual blocks of two 3x3 convs, each conv followed by a per-channel affine "scale"
  layer (dlib's `affine_`, what its batch norms became after training); widths
  32 x3, 64 x4, 128 x3, 256 x4. The first block of each width after the first, and the
  last block, downsample: their first conv has stride 2 without padding, and the shortcut
  is a 2x2 average pool whose missing channels are zeros; when the pooled map is one
  pixel larger than the conv's (8 -> 3 vs 4, 4 -> 1 vs 2 at 150 px), the conv's map gets a
  zero row at the bottom and a zero column at the right, as face-api does
- a global average pool and a 256 -> 128 linear map without bias; the descriptor is not
  L2-normalised, as face-api returns it (norms 1.24-1.51 on the 20 faces of
  benchmarks/faces_embed_parity.py; dlib compares descriptors by Euclidean distance, 0.6
  being its same-person threshold)

The input normalisation sits inside `forward` because it is part of the published network:
the weights were trained on exactly that scaling, and every caller feeding 0..255 pixels
then gets face-api's descriptors. (dlib itself divides by 256, face-api by 255; this port
follows face-api, against which its parity is proven.)

Key names, and the face-api weight names they come from (benchmarks/release_faces_embed.py
does the conversion):

    stem.conv.{weight,bias}              conv32_down/conv/{filters (HWIO -> OIHW),bias}
    stem.scale.{weight,bias}             conv32_down/scale/{weights,biases}
    blocks.{i}.conv{1,2}.conv.*          {FACEAPI_BLOCKS[i]}/conv{1,2}/conv/*
    blocks.{i}.conv{1,2}.scale.*         {FACEAPI_BLOCKS[i]}/conv{1,2}/scale/*
    fc.weight [128, 256]                 fc [256, 128], transposed

    >>> net = face_resnet()
    >>> tuple(net(torch.zeros(2, 3, 150, 150)).shape)
    (2, 128)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from taskzoo.models import MODELS

# face-api's name of each residual block, in order (blocks.{i} <- FACEAPI_BLOCKS[i])
FACEAPI_BLOCKS = ("conv32_1", "conv32_2", "conv32_3",
                  "conv64_down", "conv64_1", "conv64_2", "conv64_3",
                  "conv128_down", "conv128_1", "conv128_2",
                  "conv256_down", "conv256_1", "conv256_2", "conv256_down_out")
# the face-api name of the stem
FACEAPI_STEM = "conv32_down"
# mean RGB subtracted before the division by 255 (dlib's input_rgb_image averages)
MEAN_RGB = (122.782, 117.001, 104.298)


class ChannelScale(nn.Module):
    """Per-channel `x * weight + bias` (dlib's affine layer, face-api's "scale")."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weight[:, None, None] + self.bias[:, None, None]


class ConvScale(nn.Module):
    """Conv (with bias) -> ChannelScale -> optional ReLU. Stride 1 pads "same"; stride 2
    pads nothing ("valid"), as face-api's `convDown`."""

    def __init__(self, cin: int, cout: int, kernel: int, *, stride: int = 1,
                 relu: bool = True) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride, padding=kernel // 2 if stride == 1 else 0)
        self.scale = ChannelScale(cout)
        self.relu = relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.scale(self.conv(x))
        return F.relu(x) if self.relu else x


class ResidualBlock(nn.Module):
    """Two 3x3 ConvScales and an identity shortcut; `down` halves the map (see module doc)."""

    def __init__(self, cin: int, cout: int, *, down: bool = False) -> None:
        super().__init__()
        self.down = down
        self.conv1 = ConvScale(cin, cout, 3, stride=2 if down else 1)
        self.conv2 = ConvScale(cout, cout, 3, relu=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv2(self.conv1(x))
        if not self.down:
            return F.relu(out + x)
        short = F.avg_pool2d(x, 2, 2)
        if short.shape[1] < out.shape[1]:
            short = F.pad(short, (0, 0, 0, 0, 0, out.shape[1] - short.shape[1]))
        # a "valid" stride-2 conv can lose one pixel against the 2x2 pool: face-api pads the
        # conv's map with zeros at the bottom and the right
        dh, dw = short.shape[2] - out.shape[2], short.shape[3] - out.shape[3]
        if dh or dw:
            out = F.pad(out, (0, dw, 0, dh))
        return F.relu(out + short)


class FaceResNet(nn.Module):
    """dlib's face descriptor ResNet: `forward(x [N, 3, 150, 150] RGB 0..255)` -> [N, 128]."""

    def __init__(self, *, embedding_dim: int = 128) -> None:
        super().__init__()
        self.register_buffer("mean_rgb", torch.tensor(MEAN_RGB).view(1, 3, 1, 1),
                             persistent=False)
        self.stem = ConvScale(3, 32, 7, stride=2)
        plan = [(32, 32, False)] * 3 + [(32, 64, True)] + [(64, 64, False)] * 3 + \
            [(64, 128, True)] + [(128, 128, False)] * 2 + [(128, 256, True)] + \
            [(256, 256, False)] * 2 + [(256, 256, True)]
        self.blocks = nn.Sequential(*[ResidualBlock(a, b, down=d) for a, b, d in plan])
        self.fc = nn.Linear(256, embedding_dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - self.mean_rgb) / 255.0
        x = F.max_pool2d(self.stem(x), 3, 2)
        x = self.blocks(x)
        return self.fc(x.mean(dim=(2, 3)))


@MODELS.register("face_resnet")
def face_resnet(*, embedding_dim: int = 128) -> FaceResNet:
    """dlib's face recognition ResNet as face-api runs it: 150x150 RGB 0..255 in, an
    `embedding_dim` descriptor out (128 for the published weights)."""
    return FaceResNet(embedding_dim=embedding_dim)
