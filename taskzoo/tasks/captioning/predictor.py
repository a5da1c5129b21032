"""The captioning predictor: images in, a caption each (and, on request, the attention map of
every word); `--save DIR` writes the image with its caption and the word-by-word attention.

    >>> cap = taskzoo.load("captioning")                       # doctest: +SKIP
    >>> cap("dog.jpg")                                         # doctest: +SKIP
    {'caption': 'a brown dog runs through the grass'}
    >>> cap("dog.jpg", beam=1, attention=True)["attention"][0]  # doctest: +SKIP
    [[0.01, 0.02, ...], ...]                                   # word 1's map over the regions
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from taskzoo.data import vision
from taskzoo.data.captions import CaptionVocab
from taskzoo.errors import InputError, UsageError
from taskzoo.tasks.base import CallOption, Predictor


def encoder_maps(model: nn.Module, images: np.ndarray, *, runtime: Any, mean: Sequence[float],
                 std: Sequence[float], batch_size: int = 100) -> torch.Tensor:
    """The encoder's feature maps of uint8 images [N, H, W, 3], in eval mode without
    gradients, as float16 on the CPU (a frozen encoder's cache; decoding input)."""
    net = runtime.unwrap(model)
    norm = vision.normalize(mean, std)
    was = net.encoder.training
    net.encoder.eval()
    out = []
    try:
        with torch.no_grad(), runtime.autocast():
            for i in range(0, len(images), batch_size):
                x = torch.from_numpy(np.ascontiguousarray(images[i:i + batch_size]))
                x = norm(runtime.to_device(x.permute(0, 3, 1, 2)))
                out.append(net.encode(x).half().cpu())
    finally:
        net.encoder.train(was)
    return torch.cat(out)


class Caption(dict):
    """One image's result: {"caption": text} (and "attention": [word][region] when asked);
    `.image` (uint8 [3, H, W]), `.words` and `.maps` (attention [len, h, w]) for drawing."""

    image: torch.Tensor | None = None
    words: list[str] = []
    maps: torch.Tensor | None = None


class CaptionPredictor(Predictor):
    """Images (paths, PIL images, arrays, tensors; one or a list) -> {"caption": ...} each.
    Options: `beam` (1 = greedy), `max_words`, `attention` (add each word's map)."""

    input_noun = "image"
    call_options: ClassVar[tuple[CallOption, ...]] = (
        CallOption("beam", int, help="beam width (1 = greedy)", low=1, metavar="N"),
        CallOption("max_words", int, help="longest caption in words", low=1, metavar="N"),
        CallOption("attention", bool, help="add each word's attention map"),
    )
    serve_input: ClassVar[str] = "image"
    hf_task: ClassVar[str] = "image-to-text"
    hf_parameters: ClassVar[dict[str, str]] = {"max_new_tokens": "max_words"}

    def __init__(self, model: nn.Module, runtime: Any, *, vocab: CaptionVocab, size: int,
                 mean: Sequence[float], std: Sequence[float], beam: int = 3,
                 max_words: int = 20, batch_size: int = 100) -> None:
        super().__init__(model, runtime, batch_size=batch_size)
        self.vocab, self.size = vocab, int(size)
        self.norm = vision.normalize(mean, std)
        self.beam, self.max_words, self.attention = int(beam), int(max_words), False

    def parse_cli(self, args: Sequence[str]) -> list[Any]:
        return vision.expand_image_args(args)

    def preprocess(self, item: Any, index: int, ctx: dict[str, Any]) -> torch.Tensor:
        """Squashed to the training images' square side with Lanczos, as the data was made."""
        from PIL import Image

        item = vision.open_input(item, index)
        try:
            image = vision.to_tensor(item, 3, None)
        except InputError as exc:
            raise InputError(f"image {index}: {exc}") from None
        if tuple(image.shape[-2:]) != (self.size, self.size):
            pil = Image.fromarray(image.permute(1, 2, 0).numpy())
            pil = pil.resize((self.size, self.size), Image.Resampling.LANCZOS)
            image = torch.from_numpy(np.asarray(pil).copy()).permute(2, 0, 1)
        return image

    def forward(self, batch: torch.Tensor, ctx: dict[str, Any]) -> list[Any]:
        net = self.runtime.unwrap(self.model)
        maps = net.encode(self.norm(batch))
        res = net.caption(maps, start_id=self.vocab.start_id, end_id=self.vocab.end_id,
                          beam=ctx["beam"], max_len=ctx["max_words"], encoded=True)
        grid = tuple(maps.shape[-2:])
        return [(ids, att.reshape(len(att), *grid)) for ids, att in res]

    def postprocess(self, result: Any, example: torch.Tensor, ctx: dict[str, Any]) -> Caption:
        ids, maps = result
        words = self.vocab.decode(ids)
        out = Caption(caption=" ".join(words))
        if ctx["attention"]:
            out["attention"] = [[round(float(v), 4) for v in m.flatten()] for m in maps]
            out["grid"] = list(maps.shape[-2:])
        out.image, out.words, out.maps = example, words, maps
        return out

    def format(self, text: str, output: Caption) -> str:
        """caption<TAB>path, for the command line."""
        return f"{output['caption']}\t{text}"

    def to_json(self, output: Caption) -> dict[str, Any]:
        return dict(output)

    def serve_json(self, output: Caption, item: Any = None) -> list[dict[str, Any]]:
        """Hugging Face's image-to-text shape: [{"generated_text": caption}] (with the
        attention maps beside it when asked)."""
        rest = {k: v for k, v in output.items() if k != "caption"}
        return [{"generated_text": output["caption"], **rest}]

    def save(self, output: Caption, path: Path) -> Path:
        """The image with its caption and each word's attention, as PNG."""
        from taskzoo.files import write_bytes
        from taskzoo.tasks.captioning.report import attention_png

        if output.image is None or output.maps is None:
            raise UsageError("this result carries no image to draw")
        target = path.with_suffix(".png")
        write_bytes(target, attention_png(output.image.permute(1, 2, 0).numpy(), output.words,
                                          output.maps))
        return target


__all__ = ["Caption", "CaptionPredictor", "encoder_maps"]
