"""The autoencoder predictor: images in; the reconstruction, the denoised or coloured image,
or the code vector out, by the run's mode."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from taskzoo.data import vision
from taskzoo.errors import InputError, UsageError
from taskzoo.tasks.base import Predictor


class AutoencoderPredictor(Predictor):
    """Images in; out: the reconstruction, the denoised image or the coloured photo (PIL
    images), or the code vector (`mode=features`, a list of floats). A VAE also draws new
    images with `sample(n)`.

    >>> color = taskzoo.load_run("runs/colorize")            # doctest: +SKIP
    >>> color("grandma_1952.jpg").save("grandma_colour.png")  # doctest: +SKIP
    """

    input_noun = "image"  # what the error messages call one input
    serve_input: ClassVar[str] = "image"  # the answer: {"image": PNG data URL} or the code

    def __init__(self, model: nn.Module, runtime: Any, *, mode: str, channels: int,
                 size: tuple[int, int], batch_size: int = 256) -> None:
        super().__init__(model, runtime, batch_size=batch_size)
        self.mode, self.channels, self.size = mode, channels, tuple(size)

    def parse_cli(self, args: Any) -> list[Any]:
        return vision.expand_image_args(args)

    def preprocess(self, item: Any, index: int, ctx: dict[str, Any]) -> Any:
        item = vision.open_input(item, index)
        try:
            if self.mode == "colorize":  # full-resolution lightness, chroma predicted at `size`
                from taskzoo.data.color import split_lab

                full = vision.to_tensor(item, 3, None)
                small = vision.to_tensor(item, 3, self.size)
                return split_lab(small.permute(1, 2, 0).numpy())[0], full
            return vision.to_tensor(item, self.channels, self.size).float().div_(255), None
        except InputError as exc:
            raise InputError(f"image {index}: {exc}") from None

    def collate(self, examples: list[Any], ctx: dict[str, Any]) -> torch.Tensor:
        return torch.stack([e[0] for e in examples])

    def forward(self, batch: torch.Tensor, ctx: dict[str, Any]) -> list[torch.Tensor]:
        if self.mode == "features":
            return list(self.model.encode(batch).float().cpu())
        if self.mode == "vae":
            return list(torch.sigmoid(self.model.decode(self.model.encode(batch)[0])).float().cpu())
        out = self.model(batch).float().cpu()
        return list(out if self.mode == "colorize" else torch.sigmoid(out))

    def postprocess(self, result: torch.Tensor, example: Any, ctx: dict[str, Any]) -> Any:
        from PIL import Image

        if self.mode == "features":
            return [round(float(v), 5) for v in result]
        if self.mode == "colorize":
            from taskzoo.data.color import merge_lab, split_lab

            full = example[1]
            light = split_lab(full.permute(1, 2, 0).numpy())[0]
            ab = F.interpolate(result[None], size=tuple(full.shape[1:]), mode="bilinear",
                               align_corners=False)
            return Image.fromarray(merge_lab(light[None], ab)[0])
        arr = (result.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
        return Image.fromarray(arr[..., 0] if arr.shape[2] == 1 else arr)

    def sample(self, n: int = 16, *, seed: int = 0) -> list[Any]:
        """`n` new images from the VAE's prior N(0, I), seeded."""
        from PIL import Image

        if self.mode != "vae":
            raise UsageError(f"sample() draws from a VAE; this predictor's mode is {self.mode}")
        z = torch.randn(n, self.model.latent_dim, generator=torch.Generator().manual_seed(seed))
        with self.runtime.inference():
            images = torch.sigmoid(self.model.decode(self.runtime.to_device(z))).float().cpu()
        return [Image.fromarray((im[0] * 255).round().to(torch.uint8).numpy()) for im in images]

    def save(self, output: Any, path: Path) -> Path:
        """Write one output image as PNG (the CLI's --save DIR)."""
        if self.mode == "features":
            raise UsageError("mode=features returns code vectors, not images: use --json")
        from taskzoo.files import atomic_path

        path = path.with_name(path.name + ".png")
        with atomic_path(path) as tmp:  # a crash leaves no half-written PNG
            output.save(tmp, format="PNG")
        return path

    def to_json(self, output: Any) -> Any:
        if self.mode == "features":
            return output
        return {"size": [output.width, output.height], "mode": output.mode}

    def format(self, text: str, output: Any) -> str:
        if self.mode == "features":
            return f"{text}\t" + " ".join(f"{v:.4f}" for v in output)
        return f"{text}\t{output.width}x{output.height} {output.mode} image (--save DIR writes it)"
