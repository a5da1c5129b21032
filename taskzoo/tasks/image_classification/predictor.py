"""The image classification predictor: images in (paths, PIL images, arrays, tensors), a label
and its probability out, with `top_k=` the k most likely labels too."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from taskzoo.data import vision
from taskzoo.errors import InputError
from taskzoo.tasks.base import CallOption, Predictor


class ImagePredictor(Predictor):
    """Images (paths, PIL images, arrays, tensors; one or a list) -> {"label", "score"} each,
    and with `top_k=k` also "top": the k best [{"label", "score"}, ...].

    >>> clf = taskzoo.load("image_classification")          # doctest: +SKIP
    >>> clf("boot.png")                                      # doctest: +SKIP
    {'label': 'Ankle boot', 'score': 0.9912}
    """

    input_noun = "image"  # what the error messages call one input
    serve_input: ClassVar[str] = "image"
    hf_task: ClassVar[str] = "image-classification"
    hf_parameters: ClassVar[dict[str, str]] = {"top_k": "top_k"}
    call_options: ClassVar[tuple[CallOption, ...]] = (
        CallOption("top_k", int, default=0, help="also the K most likely labels", metavar="K",
                   low=0),
    )

    def __init__(self, model: nn.Module, runtime: Any, *, labels: list[str], channels: int,
                 size: tuple[int, int], mean: list[float], std: list[float],
                 batch_size: int = 256) -> None:
        super().__init__(model, runtime, batch_size=batch_size)
        self.labels, self.channels, self.size = labels, channels, tuple(size)
        self.norm = vision.normalize(mean, std)

    def parse_cli(self, args: Any) -> list[Any]:
        return vision.expand_image_args(args)

    def preprocess(self, item: Any, index: int, ctx: dict[str, Any]) -> torch.Tensor:
        item = vision.open_input(item, index)
        try:
            image = vision.to_tensor(item, self.channels, self.size)
        except InputError as exc:
            raise InputError(f"image {index}: {exc}") from None
        return self.norm(image)

    def forward(self, batch: torch.Tensor, ctx: dict[str, Any]) -> list[torch.Tensor]:
        return list(self.model(batch).float().softmax(-1).cpu())

    def postprocess(self, probs: torch.Tensor, example: Any,
                    ctx: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {"label": self.labels[int(probs.argmax())],
                               "score": round(float(probs.max()), 4)}
        k = int(ctx.get("top_k") or 0)
        if k > 0:
            score, idx = probs.topk(min(k, len(self.labels)))
            out["top"] = [{"label": self.labels[int(i)], "score": round(float(s), 4)}
                          for s, i in zip(score, idx)]
        return out

    def serve_json(self, output: dict[str, Any], item: Any = None) -> list[dict[str, Any]]:
        """Hugging Face's image-classification shape: [{"label", "score"}, ...], best first
        (the `top_k` best when asked, else the best)."""
        return list(output.get("top") or [{"label": output["label"], "score": output["score"]}])

    def format(self, text: str, output: dict[str, Any]) -> str:
        """label<TAB>score<TAB>path, for the command line; with top_k a fourth field,
        "top K: label score; label score; ...", best first."""
        line = f"{output['label']}\t{output['score']}\t{text}"
        top = output.get("top")
        if top:
            line += f"\ttop {len(top)}: " + "; ".join(f"{t['label']} {t['score']}" for t in top)
        return line
