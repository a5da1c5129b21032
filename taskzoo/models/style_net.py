"""The image transformation network of Johnson, Alahi & Fei-Fei (ECCV 2016), as PyTorch's
`examples/fast_neural_style` builds it: trained once per painting with a perceptual loss,
it then stylises a photo of any size in one forward pass.

    conv 9x9 (w), conv 3x3 /2 (2w), conv 3x3 /2 (4w)        reflection padding, instance norm, ReLU
    `blocks` residual blocks of two 3x3 convs (4w)           at a quarter of the resolution
    upsample x2 + conv 3x3 (2w), upsample x2 + conv 3x3 (w)  nearest, then conv: no checkerboard
    conv 9x9 -> 3 channels, sigmoid                          RGB in [0, 1]

Johnson's width is `width=32` with 5 blocks (1.68 M parameters); the default here is half as
wide (`width=16`, 0.42 M), a quarter of the arithmetic, which is what stylises over ten
256-px photos a second on a 2-core CPU. Instance normalisation (Ulyanov et al. 2016) rather
than batch normalisation, as in the published code: it keeps each image's contrast its own.

The output passes a sigmoid, as Johnson's passed a scaled tanh (PyTorch's example leaves it
unbounded and clamps only the saved image). Trained against EfficientNet-Lite rather than
VGG, an unbounded output learns to paint saturated blobs of out-of-range colour that the loss
network reads as strong style; bounded, it cannot (docs/tasks/style_transfer.md shows both).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from taskzoo.models import MODELS

__all__ = ["StyleNet", "style_net"]


class _Conv(nn.Sequential):
    """Reflection pad, conv, then instance norm and ReLU unless `last`."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, *,
                 last: bool = False) -> None:
        layers: list[nn.Module] = [nn.ReflectionPad2d(kernel // 2),
                                   nn.Conv2d(cin, cout, kernel, stride)]
        if not last:
            layers += [nn.InstanceNorm2d(cout, affine=True), nn.ReLU(inplace=True)]
        super().__init__(*layers)


class _Residual(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = _Conv(channels, channels, 3)
        self.conv2 = nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3),
                                   nn.InstanceNorm2d(channels, affine=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(self.conv1(x))


class _Up(nn.Module):
    """Nearest-neighbour upsampling to `size`, then a conv (Odena et al. 2016: no
    checkerboard, unlike a transposed conv)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = _Conv(cin, cout, 3)

    def forward(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        return self.conv(F.interpolate(x, size=size, mode="nearest"))


class StyleNet(nn.Module):
    """RGB [B, 3, H, W] in [0, 1] -> the stylised image in [0, 1], same size (H, W >= 16)."""

    def __init__(self, *, width: int, blocks: int) -> None:
        super().__init__()
        self.down = nn.ModuleList([_Conv(3, width, 9), _Conv(width, 2 * width, 3, 2),
                                   _Conv(2 * width, 4 * width, 3, 2)])
        self.res = nn.Sequential(*(_Residual(4 * width) for _ in range(blocks)))
        self.up = nn.ModuleList([_Up(4 * width, 2 * width), _Up(2 * width, width)])
        self.out = _Conv(width, 3, 9, last=True)
        self.min_size = 4  # reflection padding needs a map larger than its pad at every scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"StyleNet expects images [B, 3, H, W], got {tuple(x.shape)}")
        if min(x.shape[-2:]) < self.min_size * 4:
            raise ValueError(f"StyleNet needs images of at least {self.min_size * 4} px a side, "
                             f"got {tuple(x.shape[-2:])}")
        sizes = [tuple(x.shape[-2:])]
        x = self.down[0](x)
        for conv in self.down[1:]:
            x = conv(x)
            sizes.append(tuple(x.shape[-2:]))
        x = self.res(x)
        for up, size in zip(self.up, reversed(sizes[:-1])):
            x = up(x, size)
        return torch.sigmoid(self.out(x))


@MODELS.register("style_net", aliases=("transformer_net", "fast_style"))
def style_net(*, width: int = 16, blocks: int = 5) -> StyleNet:
    """Johnson et al.'s image transformation network; `width=32` is the published one
    (1,679,235 params), the default 16 has 424,899.

    >>> net = style_net()
    >>> tuple(net(torch.rand(1, 3, 64, 48)).shape)
    (1, 3, 64, 48)
    """
    return StyleNet(width=width, blocks=blocks)
