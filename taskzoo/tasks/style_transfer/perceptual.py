"""The perceptual loss of neural style transfer (Gatys, Ecker & Bethge 2016; Johnson, Alahi &
Fei-Fei 2016) on a frozen EfficientNet-Lite instead of VGG.

An image's *content* is a loss network's map at one depth, its *style* the Gram matrices
(channel co-activations, position discarded) of maps at several depths. Both losses are
relative here, each divided by its target's own energy, so that a weight means the same on
any network, layer and image size:

    content(x) = |F(x) - F(c)|^2 / |F(c)|^2                (mean over content layers)
    style(x)   = |G(x) - G(s)|^2 / |G(s)|^2,  G = F F^T / (H W)   (mean over style layers)

`transform="softmax"` is SWAG (Wang, Li & Vasconcelos, CVPR 2021): each map is replaced by a
softmax over all of its C x H x W entries (times their number, so it averages 1). Residual
networks' maps are peaky (a few huge activations dominate the Gram matrix); the softmax
smooths them, which their paper shows makes ResNets stylise as VGG does.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["LossNetwork", "StyleTargets", "gram", "relative_losses"]


def gram(maps: torch.Tensor) -> torch.Tensor:
    """Gram matrices [B, C, C] of maps [B, C, H, W], divided by H x W (size-free)."""
    b, c, h, w = maps.shape
    flat = maps.reshape(b, c, h * w)
    return flat @ flat.transpose(1, 2) / (h * w)


def swag(maps: torch.Tensor, temperature: float = 0.0) -> torch.Tensor:
    """SWAG's softmax over all C x H x W entries of each image's map, scaled to mean 1.
    `temperature` 0 divides each map by its own standard deviation first (see the module
    doc: EfficientNet's linear block outputs span +-70, where a softmax at 1 is one-hot)."""
    b = maps.shape[0]
    flat = maps.reshape(b, -1).float()
    scale = flat.std(dim=1, keepdim=True).detach().clamp_min(1e-6) if not temperature else temperature
    return (torch.softmax(flat / scale, dim=1) * flat.shape[1]).reshape(maps.shape).to(maps.dtype)


class LossNetwork(nn.Module):
    """A frozen EfficientNet-Lite read at stage ends (`EfficientNetLite.stage_maps`): RGB in
    [0, 1] -> the content maps and the style maps, each through `transform` where
    `transformed[i]` (the style layers' flags; content maps use `content_transform`).

    >>> from taskzoo.models import build
    >>> net = LossNetwork(build("efficientnet_lite0"), content=(4,), style=(1, 2, 3, 4))
    >>> c, s = net(torch.rand(1, 3, 64, 64))
    >>> [m.shape[1] for m in c], [m.shape[1] for m in s]
    ([80], [16, 24, 40, 80])
    """

    def __init__(self, backbone: nn.Module, *, content: tuple[int, ...], style: tuple[int, ...],
                 transform: str = "none", transformed: tuple[bool, ...] | None = None,
                 content_transform: bool = False, temperature: float = 0.0, mean: tuple[float, ...] = (0.498,) * 3,
                 std: tuple[float, ...] = (0.502,) * 3) -> None:
        super().__init__()
        if transform not in ("none", "softmax"):
            raise ValueError(f"transform must be none or softmax, got {transform!r}")
        self.backbone = backbone.eval().requires_grad_(False)
        self.content, self.style = tuple(content), tuple(style)
        flags = (True,) * len(self.style) if transformed is None else tuple(transformed)
        if len(flags) != len(self.style):
            raise ValueError(f"{len(flags)} transform flags for {len(self.style)} style layers")
        self.transform = transform
        self.flags = flags if transform != "none" else (False,) * len(self.style)
        self.content_flag = content_transform and transform != "none"
        self.temperature = temperature
        self.stages = tuple(sorted(set(self.content) | set(self.style)))
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)

    def train(self, mode: bool = True) -> LossNetwork:
        super().train(mode)
        self.backbone.eval()  # frozen: BatchNorm keeps ImageNet's statistics
        return self

    def forward(self, images: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        maps = dict(zip(self.stages, self.backbone.stage_maps((images - self.mean) / self.std,
                                                              self.stages)))
        t = self.temperature
        content = [swag(maps[s], t) if self.content_flag else maps[s] for s in self.content]
        style = [swag(maps[s], t) if f else maps[s] for s, f in zip(self.style, self.flags)]
        return content, style


@dataclass
class StyleTargets:
    """What one loss is measured against: the photos' content maps and a painting's Grams."""

    content: list[torch.Tensor]  # [B, C, H, W] per content layer (detached)
    grams: list[torch.Tensor]  # [1 or B, C, C] per style layer (detached)

    @classmethod
    def of(cls, net: LossNetwork, photos: torch.Tensor | None,
           painting: torch.Tensor) -> StyleTargets:
        """Targets for `photos` [B, 3, H, W] (None: style only) and `painting` [1, 3, h, w]."""
        with torch.no_grad():
            content = net(photos)[0] if photos is not None else []
            grams = [gram(m.float()) for m in net(painting)[1]]
        return cls([c.detach() for c in content], [g.detach() for g in grams])

    @classmethod
    def for_photo(cls, net: LossNetwork, photo: torch.Tensor,
                  grams: list[torch.Tensor]) -> StyleTargets:
        """Targets for `photo` against a painting's Grams computed once (`of(...).grams`)."""
        with torch.no_grad():
            return cls([c.detach() for c in net(photo)[0]], grams)


def relative_losses(net: LossNetwork, images: torch.Tensor,
                    targets: StyleTargets) -> tuple[torch.Tensor, torch.Tensor]:
    """(content loss [B], style loss [B]) of `images` [B, 3, H, W] against `targets`: each
    layer's squared error over its target's squared norm, averaged over the layers."""
    content, style = net(images)
    c_terms = [((m.float() - t.float()) ** 2).flatten(1).sum(1) / t.float().pow(2).flatten(1).sum(1)
               .clamp_min(1e-12) for m, t in zip(content, targets.content)]
    s_terms = []
    for m, g in zip(style, targets.grams):
        diff = (gram(m.float()) - g).pow(2).flatten(1).sum(1)
        s_terms.append(diff / g.pow(2).flatten(1).sum(1).clamp_min(1e-12))
    zero = images.new_zeros(images.shape[0], dtype=torch.float32)
    c = torch.stack(c_terms).mean(0) if c_terms else zero
    s = torch.stack(s_terms).mean(0) if s_terms else zero
    return c, s
