"""Images as (input, target, extra) training pairs, for models that output images.

An image example `(uint8 [C, H, W], label)` becomes a pair by a per-sample transform, run by
the loader under the generator it seeds with (seed, epoch, index), so a pair's noise does not
depend on workers or resumes, and evaluation (seeded by index alone) always sees the same
noisy test images:

- `Clean`: the image as input and target (autoencoders), floats in [0, 1].
- `Corrupt`: Gaussian noise (clipped to [0, 1]), salt-and-pepper, or masked (zeroed) pixels
  as input, the clean image as target (denoising).
- `Binarize`: pixels drawn as Bernoulli(intensity), input and target alike (the VAE
  literature's dynamically binarised MNIST).
- `LabPair`: the lightness channel as input, the chroma (ab of CIE Lab) as target and the
  RGB image as extra (colorization); see `taskzoo.data.color` for the scaling.

`PairCollate` stacks them: (inputs [B, ...], targets [B, ...], extras [B, ...]). Extras are
class labels (int64) except for `LabPair`, where they are the uint8 RGB images.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from taskzoo.errors import ConfigError

NOISES = ("gaussian", "salt_pepper", "mask")


def _unit(image: torch.Tensor) -> torch.Tensor:
    return image.float().div_(255)


class Clean:
    """(image, label) -> (x, x, label) with x in [0, 1]; `augment` (a transforms.v2 callable
    on the uint8 image) runs first."""

    def __init__(self, augment: Callable[[Any], Any] | None = None) -> None:
        self.augment = augment

    def image(self, image: torch.Tensor) -> torch.Tensor:
        if self.augment is None:
            return image
        from torchvision import tv_tensors

        return self.augment(tv_tensors.Image(image)).as_subclass(torch.Tensor)

    def __call__(self, example: tuple[torch.Tensor, Any]) -> tuple[torch.Tensor, ...]:
        image, label = example
        x = _unit(self.image(image))
        return x, x, label


class Corrupt(Clean):
    """(image, label) -> (noisy, clean, label). `gaussian`: + sigma * N(0, 1), clipped to
    [0, 1]; `salt_pepper`: a fraction `amount` of pixels set to 0 or 1 (even odds);
    `mask`: a fraction `amount` of pixels set to 0. All channels of a pixel alike for the
    last two, as a scratch or a dead pixel would be."""

    def __init__(self, kind: str, *, sigma: float = 0.3, amount: float = 0.25,
                 augment: Callable[[Any], Any] | None = None) -> None:
        if kind not in NOISES:
            raise ConfigError(f"noise={kind!r}: expected one of {', '.join(NOISES)}")
        super().__init__(augment)
        self.kind, self.sigma, self.amount = kind, sigma, amount

    def __call__(self, example: tuple[torch.Tensor, Any]) -> tuple[torch.Tensor, ...]:
        image, label = example
        clean = _unit(self.image(image))
        if self.kind == "gaussian":
            noisy = (clean + self.sigma * torch.randn_like(clean)).clamp_(0, 1)
        else:
            hit = torch.rand(1, *clean.shape[1:]) < self.amount
            fill = (torch.rand(1, *clean.shape[1:]) < 0.5).float() if self.kind == "salt_pepper" \
                else torch.zeros(1, *clean.shape[1:])
            noisy = torch.where(hit, fill.expand_as(clean), clean)
        return noisy, clean, label


class Binarize(Clean):
    """(image, label) -> (b, b, label), b ~ Bernoulli(intensity): a fresh draw every epoch
    in training, one fixed draw per image in evaluation."""

    def __call__(self, example: tuple[torch.Tensor, Any]) -> tuple[torch.Tensor, ...]:
        image, label = example
        b = torch.bernoulli(_unit(self.image(image)))
        return b, b, label


class LabPair(Clean):
    """(RGB image, label) -> (L [1, H, W], ab [2, H, W], the uint8 RGB image [3, H, W])."""

    def __call__(self, example: tuple[torch.Tensor, Any]) -> tuple[torch.Tensor, ...]:
        from taskzoo.data.color import split_lab

        image, _ = example
        rgb = self.image(image)
        if rgb.shape[0] != 3:
            raise ConfigError("colorization needs colour (RGB) images; this data is grey")
        light, ab = split_lab(rgb.permute(1, 2, 0).numpy())
        return light, ab, rgb


class PairCollate:
    """Pairs -> (inputs, targets, extras), each stacked into one tensor."""

    def __call__(self, batch: list[tuple[Any, Any, Any]]) -> tuple[torch.Tensor, ...]:
        inputs = torch.stack([b[0] for b in batch])
        targets = torch.stack([b[1] for b in batch])
        extras = [b[2] for b in batch]
        extra = torch.stack(extras) if isinstance(extras[0], torch.Tensor) else \
            torch.tensor(extras)
        return inputs, targets, extra
