"""The style predictor: photos in, paintings out. By default the trained network stylises each
photo in one pass (any size; a video frame by frame); `style=` another painting optimises
each photo's pixels for it instead (Gatys et al.: slower, any painting, no training)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from taskzoo.data import vision
from taskzoo.errors import InputError, UsageError
from taskzoo.tasks.base import CallOption, Predictor
from taskzoo.tasks.style_transfer.evaluate import Recipe

MAX_SIDE = 1024  # size 0: a larger photo is scaled down to this long side (memory, time)


def _resized(image: Any, size: int) -> torch.Tensor:
    """An RGB image as float [3, H, W] in [0, 1]: its long side `size` (0: as it is, but at
    most MAX_SIDE), each side at least 16 px (the network's smallest input)."""
    from PIL import Image

    im = image.convert("RGB")
    side = size or min(max(im.size), MAX_SIDE)
    scale = side / max(im.size)
    w, h = max(16, round(im.width * scale)), max(16, round(im.height * scale))
    if (w, h) != im.size:
        im = im.resize((w, h), Image.Resampling.LANCZOS if scale < 1 else Image.Resampling.BICUBIC)
    return vision.to_tensor(im, 3, None).float().div_(255)


class StylePredictor(Predictor):
    """Photos (paths, PIL images, arrays) in; stylised PIL images out.

    >>> style = taskzoo.load("style_transfer")                            # doctest: +SKIP
    >>> style("photo.jpg").save("starry.png")        # one pass          # doctest: +SKIP
    >>> style("photo.jpg", style="the_scream", size=384)  # optimised   # doctest: +SKIP
    """

    input_noun = "image"
    call_options = (
        CallOption("size", int, 0, "long side of the output in px; 0: the photo's own (at most "
                   f"{MAX_SIDE}), or the recipe's 384 when optimising", low=0, high=4096),
        # optimising (style=) may read an image's path and takes minutes: not served
        CallOption("style", str, "", "optimise each photo for this painting instead (a shared "
                   "name such as the_scream, or an image's path): Gatys et al., no network",
                   serve=False),
        CallOption("steps", int, 0, "loss-network evaluations per photo when optimising; 0: the "
                   "recipe's", low=0, high=10000, serve=False),
        CallOption("style_weight", float, 0.0, "style against content when optimising; 0: the "
                   "recipe's", low=0, serve=False),
        CallOption("optimizer", str, "lbfgs", "the optimiser of the pixels",
                   choices=("lbfgs", "adam"), serve=False),
        CallOption("overwrite", bool, False, "a video: replace an existing output taskzoo did "
                   "not write", serve=False),
    )
    serve_input: ClassVar[str] = "image"  # the answer: {"image": PNG data URL, "size"}

    def __init__(self, model: nn.Module, runtime: Any, *, recipe: Recipe, style: str,
                 batch_size: int = 8) -> None:
        super().__init__(model, runtime, batch_size=batch_size)
        self.recipe, self.painting = recipe, style  # the painting the network was trained on
        self.size, self.style, self.steps, self.style_weight = 0, "", 0, 0.0
        self.optimizer, self.overwrite = "lbfgs", False
        self._loss_net: Any = None

    def parse_cli(self, args: Any) -> list[Any]:
        return vision.expand_image_args(args)

    def preprocess(self, item: Any, index: int, ctx: dict[str, Any]) -> torch.Tensor:
        from PIL import Image

        image = vision.open_input(item, index)
        try:
            if not isinstance(image, Image.Image):  # an array or tensor, checked and made RGB
                image = Image.fromarray(vision.to_tensor(image, 3, None).permute(1, 2, 0).numpy())
        except InputError as exc:
            raise InputError(f"image {index}: {exc}") from None
        return _resized(image, ctx["size"] or (self.recipe.optimize_size if ctx["style"] else 0))

    def run(self, items: list[Any], ctx: dict[str, Any]) -> list[Any]:
        examples = [self.preprocess(item, i, ctx) for i, item in enumerate(items)]
        if ctx["style"]:
            return [self._to_image(r) for r in self._optimize(examples, ctx)]
        results: list[Any] = [None] * len(examples)
        by_size: dict[tuple[int, ...], list[int]] = {}
        for i, e in enumerate(examples):  # one batch holds one size
            by_size.setdefault(tuple(e.shape), []).append(i)
        with self.runtime.inference():
            for idx in by_size.values():
                for start in range(0, len(idx), self.batch_size):
                    part = idx[start:start + self.batch_size]
                    batch = self.runtime.to_device(torch.stack([examples[i] for i in part]))
                    out = self.model(batch).float().clamp(0, 1).cpu()
                    for i, r in zip(part, out):
                        results[i] = r
        return [self._to_image(r) for r in results]

    @staticmethod
    def _to_image(result: torch.Tensor) -> Any:
        from PIL import Image

        return Image.fromarray((result * 255).round().to(torch.uint8).permute(1, 2, 0).numpy())

    # -- Gatys: each photo's pixels optimised
    def loss_network(self) -> Any:
        """The recipe's loss network on the predictor's device (built on first use)."""
        if self._loss_net is None:
            from taskzoo.tasks.style_transfer.evaluate import loss_network

            r = self.recipe
            self._loss_net = loss_network(r.loss_net, r.loss_init, content=r.content_layers,
                                          style=r.style_layers, transform=r.transform,
                                          runtime=self.runtime)
        return self._loss_net

    def _optimize(self, photos: list[torch.Tensor], ctx: dict[str, Any]) -> list[torch.Tensor]:
        from taskzoo.tasks.style_transfer.data import painting_tensor
        from taskzoo.tasks.style_transfer.optimize import optimize_image
        from taskzoo.tasks.style_transfer.perceptual import StyleTargets

        r = self.recipe
        net = self.loss_network()
        painting = self.runtime.to_device(painting_tensor(ctx["style"], r.style_size))
        grams = StyleTargets.of(net, None, painting).grams
        out = []
        for photo in photos:
            x = self.runtime.to_device(photo[None])
            res = optimize_image(net, x, StyleTargets.for_photo(net, x, grams),
                                 steps=ctx["steps"] or r.steps,
                                 content_weight=r.content_weight,
                                 style_weight=ctx["style_weight"] or r.style_weight,
                                 tv_weight=r.tv_weight, optimizer=ctx["optimizer"])
            out.append(res.image[0].float().cpu())
        return out

    # -- outputs
    def save(self, output: Any, path: Path) -> Path:
        """Write one stylised image as PNG (the CLI's --save DIR)."""
        from taskzoo.files import atomic_path

        path = path.with_name(path.name + ".png")
        with atomic_path(path) as tmp:  # a crash leaves no half-written PNG
            output.save(tmp, format="PNG")
        return path

    def to_json(self, output: Any) -> Any:
        return {"size": [output.width, output.height], "mode": output.mode}

    def format(self, text: str, output: Any) -> str:
        return f"{text}\t{output.width}x{output.height} stylised image (--save DIR writes it)"

    # -- videos (the CLI's stream hook)
    def stream_cli(self, inputs: Sequence[str], save: str | None, **options: Any) -> list | None:
        """`taskzoo predict style clip.mp4 --save out.mp4`: every frame through the network;
        None unless the inputs are videos."""
        from taskzoo.video.output import video_request, video_targets
        from taskzoo.video.transform import map_video

        if not video_request(inputs, save):
            return None
        ctx = self.context([], **self.check_options(options))
        if ctx["style"]:
            raise UsageError("--style optimises each photo for minutes; a video goes through "
                             "the trained network (train one for that painting: taskzoo run "
                             f"style style={ctx['style']})")
        summaries = []
        for src, target in zip(inputs, video_targets(inputs, save)):
            summaries.append(map_video(lambda frames: self.stylise_frames(frames, ctx["size"]),
                                       Path(src), target, batch=min(self.batch_size, 4),
                                       overwrite=bool(ctx["overwrite"])))
        return summaries

    def stylise_frames(self, frames: list[Any], size: int = 0) -> list[Any]:
        """RGB uint8 frames [H, W, 3] -> stylised frames of the same size."""
        import numpy as np

        out = self(list(frames), size=size)
        return [np.asarray(im.resize((f.shape[1], f.shape[0])) if im.size != (f.shape[1], f.shape[0])
                           else im) for im, f in zip(out, frames)]
