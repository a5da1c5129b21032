"""Image-to-image models: a convolutional autoencoder, a VAE and a small U-Net.

Every output is raw: logits. The task applies the sigmoid (reconstruction) or softmax
(segmentation) that its loss needs; BCE-with-logits is stabler than a sigmoid here and a
BCE there.

- `conv_ae` and `vae` take square images [B, C, S, S] of one side S >= 8, fixed at build
  time because a dense code sits between encoder and decoder. The encoder trunk reuses the
  CNN family's blocks: a 3x3 conv-BN-ReLU of `width` channels, then stride-2 conv-BN-ReLU
  stages that double the width (capped at 8 x width) until the side is <= 8. A padded
  stride-2 3x3 conv keeps ceil(s / 2) cells:

      28 -> 14 -> 7     32 -> 16 -> 8     64 -> 32 -> 16 -> 8     128 -> 64 -> 32 -> 16 -> 8

  (8 px images, such as sklearn's digits, get no stride-2 stage). The decoder mirrors each
  stage with a stride-2 3x3 transposed conv whose output_padding (1 for an even side, 0 for
  an odd one) undoes the ceil exactly, so the logits have the input's size for every S >= 8
  with no crop or interpolation; a last 3x3 conv maps to C logit maps.
- `conv_ae`: trunk -> `stack` dense code layers of widths code_dim * 4**(stack - k), ReLU
  between them; the last (the code) is linear, with no activation or norm, so the code is a
  plain linear projection of the features, comparable with PCA's components. The decoder
  mirrors the dense layers (ReLU after each) back to the trunk's grid.
  `encode_layers(x)` returns every code layer's output (after its ReLU; the last is
  `encode(x)`), for layer-wise comparisons of a stacked autoencoder.
- `vae` (Kingma & Welling 2014): the same trunk ending in two linear heads, `mu` and
  `logvar`; `forward(x, generator)` samples z = mu + exp(logvar / 2) * eps when training
  and decodes z = mu in eval mode, returning (logits, mu, logvar) for the ELBO.
- `unet_small` (Ronneberger et al. 2015): `depth` levels of two 3x3 conv-BN-ReLU and a 2x2
  max-pool, a bottleneck, then 2x2 stride-2 transposed convs each followed by the level's
  skip (concatenated) and two conv-BN-ReLU; a 1x1 conv gives `out_channels` logit maps of
  the input's size. Any H x W divisible by 2**depth works.

    model        defaults                                   params
    conv_ae      1x28x28, width 32, code 32, stack 1        593,249   (stack 2: 1.81M, 3: 6.75M)
    vae          1x28x28, width 32, latent 16               492,897
    unet_small   1 in, 2 out, width 32, depth 3 (any size)  1,926,466

Weights: the CNN family's `init_weights` (kaiming-normal fan-out convs, BN 1/0, PyTorch's
default for linear layers and transposed convs), except the conv that outputs logits: see
`_init_logit_conv`.

>>> net = conv_ae(image_size=28, width=8)
>>> net(torch.zeros(2, 1, 28, 28)).shape, net.encode(torch.zeros(2, 1, 28, 28)).shape
(torch.Size([2, 1, 28, 28]), torch.Size([2, 32]))
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from taskzoo.models import MODELS
from taskzoo.models.cnn import conv_bn_relu, init_weights

# exp(10) = 22,026 keeps exp(logvar) (in the KL term) and exp(logvar / 2) finite in fp16 and
# bf16, and stops an early, runaway logvar from making z pure noise (or a near-zero variance
# from blowing up the KL's -logvar); for pixels in [0, 1] the clamp binds only on such values
LOGVAR_RANGE = (-10.0, 10.0)


def _init_logit_conv(conv: nn.Conv2d) -> None:
    """Fan-in, unit-gain init for a conv that outputs logits. The fan-out ReLU init suits
    hidden convs; on a conv to 1-3 maps it scales the logits by ~sqrt(cin / cout): std 4.2
    at init (conv_ae, 32 channels to 1), saturating the sigmoid. This gives std ~0.6."""
    nn.init.kaiming_normal_(conv.weight, mode="fan_in", nonlinearity="linear")
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)


def _trunk_sides(image_size: int) -> list[int]:
    """The side after the first conv and after each stride-2 stage: [S, ceil(S / 2), ..., <= 8]."""
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 8:
        raise ValueError(f"image_size must be an integer >= 8 (the encoder downsamples to a "
                         f"grid of side <= 8), got {image_size!r}")
    sides = [image_size]
    while sides[-1] > 8:
        sides.append(-(-sides[-1] // 2))
    return sides


class _ConvCodec(nn.Module):
    """The conv trunk, image -> flat features, and the decoder, code -> dense layers ->
    transposed convs -> logits, that ConvAutoencoder and ConvVAE share. Subclasses add the
    encoder's code layers and call `_init()`."""

    def __init__(self, *, in_channels: int, image_size: int, width: int,
                 code_dims: Sequence[int]) -> None:
        super().__init__()
        if in_channels < 1 or width < 1 or min(code_dims) < 1:
            raise ValueError(f"in_channels, width and code sizes must be positive, got "
                             f"{in_channels}, {width}, {tuple(code_dims)}")
        sides = _trunk_sides(image_size)
        widths = [min(width * 2 ** i, 8 * width) for i in range(len(sides))]
        self.in_channels = in_channels
        self.image_size = image_size
        self.encoder_convs = nn.Sequential(
            conv_bn_relu(in_channels, width),
            *(conv_bn_relu(widths[i], widths[i + 1], stride=2) for i in range(len(sides) - 1)))
        self.grid = (widths[-1], sides[-1], sides[-1])
        self.flat_dim = widths[-1] * sides[-1] ** 2
        # the dense layers in reverse, back to the trunk's grid, a ReLU after each
        dims = (*reversed(code_dims), self.flat_dim)
        self.decoder_dense = nn.Sequential(*(m for a, b in zip(dims[:-1], dims[1:])
                                             for m in (nn.Linear(a, b), nn.ReLU(inplace=True))))
        ups: list[nn.Module] = []
        for i in reversed(range(len(sides) - 1)):
            # (s - 1) * 2 - 2 + 3 + output_padding: 2s for an even target side, 2s - 1 for odd
            ups.append(nn.Sequential(
                nn.ConvTranspose2d(widths[i + 1], widths[i], 3, stride=2, padding=1,
                                   output_padding=1 - sides[i] % 2, bias=False),
                nn.BatchNorm2d(widths[i]), nn.ReLU(inplace=True)))
        self.decoder_convs = nn.Sequential(*ups, nn.Conv2d(width, in_channels, 3, padding=1))
        self._code_dim = code_dims[-1]

    def _init(self) -> None:
        init_weights(self)
        _init_logit_conv(self.decoder_convs[-1])

    def _check(self, x: torch.Tensor) -> None:
        c, s = self.in_channels, self.image_size
        if x.ndim != 4 or tuple(x.shape[1:]) != (c, s, s):
            raise ValueError(f"{type(self).__name__} expects images [B, {c}, {s}, {s}], "
                             f"got a tensor of shape {tuple(x.shape)}")

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        """Flat trunk features [B, flat_dim]."""
        self._check(x)
        return self.encoder_convs(x).flatten(1)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Logits [B, C, S, S] from codes [B, code size]."""
        if z.ndim != 2 or z.shape[1] != self._code_dim:
            raise ValueError(f"{type(self).__name__} decodes codes [B, {self._code_dim}], "
                             f"got a tensor of shape {tuple(z.shape)}")
        return self.decoder_convs(self.decoder_dense(z).reshape(-1, *self.grid))


class ConvAutoencoder(_ConvCodec):
    """Conv trunk -> `stack` dense code layers (the last linear) -> mirrored decoder."""

    def __init__(self, *, in_channels: int, image_size: int, code_dim: int, width: int,
                 stack: int) -> None:
        if isinstance(stack, bool) or stack not in (1, 2, 3):
            raise ValueError(f"stack must be 1, 2 or 3 dense code layers, got {stack!r}")
        layer_dims = tuple(code_dim * 4 ** (stack - k) for k in range(1, stack + 1))
        super().__init__(in_channels=in_channels, image_size=image_size, width=width,
                         code_dims=layer_dims)
        self.code_dim = code_dim
        self.stack = stack
        self.layer_dims = layer_dims
        dims = (self.flat_dim, *layer_dims)
        self.encoder_dense = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))
        self._init()

    def encode_layers(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Each dense code layer's output [B, layer_dims[k]]; the last is the code."""
        h = self._features(x)
        outs = []
        for k, layer in enumerate(self.encoder_dense):
            h = layer(h)
            if k < self.stack - 1:  # the code layer itself stays linear
                h = F.relu(h)
            outs.append(h)
        return outs

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The code [B, code_dim]."""
        return self.encode_layers(x)[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstruction logits [B, C, S, S]."""
        return self.decode(self.encode(x))


class ConvVAE(_ConvCodec):
    """Conv trunk -> linear `mu` and `logvar` heads; z (sampled when training) -> decoder."""

    def __init__(self, *, in_channels: int, image_size: int, latent_dim: int,
                 width: int) -> None:
        super().__init__(in_channels=in_channels, image_size=image_size, width=width,
                         code_dims=(latent_dim,))
        self.latent_dim = latent_dim
        self.mu = nn.Linear(self.flat_dim, latent_dim)
        self.logvar = nn.Linear(self.flat_dim, latent_dim)
        self._init()

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The posterior's mean and log-variance (clamped to LOGVAR_RANGE), each [B, latent_dim]."""
        h = self._features(x)
        return self.mu(h), self.logvar(h).clamp(*LOGVAR_RANGE)

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(logits, mu, logvar). Training: z = mu + exp(logvar / 2) * eps, eps drawn with
        `generator` (on the model's device) when given; eval: z = mu, deterministic."""
        mu, logvar = self.encode(x)
        z = mu
        if self.training:
            eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
            z = mu + torch.exp(0.5 * logvar) * eps
        return self.decode(z), mu, logvar


def _double_conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(conv_bn_relu(cin, cout), conv_bn_relu(cout, cout))


class UNet(nn.Module):
    """Ronneberger et al. 2015's U-Net with padded convs and BN: the output keeps the input size."""

    def __init__(self, *, in_channels: int, out_channels: int, width: int, depth: int) -> None:
        super().__init__()
        if isinstance(depth, bool) or depth not in range(1, 6):
            raise ValueError(f"depth must be 1 to 5 downsampling levels, got {depth!r}")
        if min(in_channels, out_channels, width) < 1:
            raise ValueError(f"in_channels, out_channels and width must be positive, got "
                             f"{in_channels}, {out_channels}, {width}")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.depth = depth
        widths = [min(width * 2 ** level, 8 * width) for level in range(depth + 1)]
        self.down = nn.ModuleList(_double_conv(in_channels if level == 0 else widths[level - 1],
                                               widths[level]) for level in range(depth))
        self.pool = nn.MaxPool2d(2)
        self.bottleneck = _double_conv(widths[depth - 1], widths[depth])
        levels = list(reversed(range(depth)))  # decoder order: deepest first
        self.up = nn.ModuleList(nn.ConvTranspose2d(widths[level + 1], widths[level], 2, stride=2)
                                for level in levels)
        self.up_convs = nn.ModuleList(_double_conv(2 * widths[level], widths[level])
                                      for level in levels)
        self.head = nn.Conv2d(widths[0], out_channels, 1)
        init_weights(self)
        _init_logit_conv(self.head)

    def _check(self, x: torch.Tensor) -> None:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"UNet expects images [B, {self.in_channels}, H, W], "
                             f"got a tensor of shape {tuple(x.shape)}")
        h, w = x.shape[-2:]
        m = 2 ** self.depth
        if h % m or w % m:
            # exact halving at every level keeps each skip the size of its upsampled map
            fits = [d for d in range(1, self.depth) if h % 2 ** d == 0 and w % 2 ** d == 0]
            other = f", or use depth <= {fits[-1]}" if fits else ""
            crop = (f" or crop to {h // m * m}x{w // m * m}" if min(h, w) >= m else "")
            raise ValueError(
                f"UNet with depth {self.depth} needs image sides divisible by 2**{self.depth} "
                f"= {m}, got {h}x{w}: pad to {-(-h // m) * m}x{-(-w // m) * m}{crop}{other}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits [B, out_channels, H, W]."""
        self._check(x)
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
            x = self.pool(x)
        x = self.bottleneck(x)
        for up, conv, skip in zip(self.up, self.up_convs, reversed(skips)):
            x = conv(torch.cat([skip, up(x)], dim=1))
        return self.head(x)


@MODELS.register("conv_ae")
def conv_ae(*, in_channels: int = 1, image_size: int = 28, code_dim: int = 32, width: int = 32,
            stack: int = 1) -> ConvAutoencoder:
    """A conv autoencoder with `stack` dense code layers: 593,249 params (1x28x28, defaults)."""
    return ConvAutoencoder(in_channels=in_channels, image_size=image_size, code_dim=code_dim,
                           width=width, stack=stack)


@MODELS.register("vae")
def vae(*, in_channels: int = 1, image_size: int = 28, latent_dim: int = 16,
        width: int = 32) -> ConvVAE:
    """A conv VAE, conv_ae's trunk and decoder: 492,897 params (1x28x28, defaults)."""
    return ConvVAE(in_channels=in_channels, image_size=image_size, latent_dim=latent_dim,
                   width=width)


@MODELS.register("unet_small")
def unet_small(*, in_channels: int = 1, out_channels: int = 2, width: int = 32,
               depth: int = 3) -> UNet:
    """A small U-Net for any size divisible by 2**depth: 1,926,466 params (defaults)."""
    return UNet(in_channels=in_channels, out_channels=out_channels, width=width, depth=depth)
