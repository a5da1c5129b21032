"""The detection predictor: images in (paths, folders, PIL images, arrays, tensors), boxes,
labels and scores out; videos and folders of frames through `taskzoo.video` (tracked).

    >>> det = taskzoo.load("detection", conf=0.3)             # doctest: +SKIP
    >>> det("street.jpg")                                     # doctest: +SKIP
    {'boxes': [[12.0, 40.5, 88.1, 230.0]], 'labels': ['person'], 'scores': [0.91]}
    >>> det(["a.jpg", "b.jpg"], conf=0.5, iou=0.6)            # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from taskzoo.data import vision
from taskzoo.data.detection.aug import resize_example
from taskzoo.errors import InputError, UsageError
from taskzoo.tasks.base import CallOption, Predictor
from taskzoo.video import VIDEO_SUFFIXES  # one list of what a video file is, read or written
from taskzoo.video.output import video_request, video_targets


class Detections(dict):
    """One image's result: {"boxes": [[x1, y1, x2, y2], ...] (pixels of the input image),
    "labels": [names], "scores": [...]}, best first; `.image` is the input (uint8
    [3, H, W]) for drawing."""

    image: torch.Tensor | None = None


class DetectionPredictor(Predictor):
    """Boxes for images; `conf=`, `iou=` and `max_det=` per call or for the predictor."""

    input_noun = "image"
    call_options: ClassVar[tuple[CallOption, ...]] = (
        CallOption("conf", float, help="score threshold", low=0, high=1, metavar="C"),
        CallOption("iou", float, help="NMS IoU threshold", low=0, high=1, metavar="T"),
        CallOption("max_det", int, help="keep at most N boxes an image", low=1, metavar="N",
                   expect=">= 1"),
        # only videos: an image --save never replaces a file (a taken name gets -2, -3, ...)
        CallOption("overwrite", bool, help="a video's --save OUT.mp4: replace OUT (and "
                   "OUT.jsonl) even when taskzoo did not write it", serve=False),
    )
    serve_input: ClassVar[str] = "image"
    hf_task: ClassVar[str] = "object-detection"
    hf_parameters: ClassVar[dict[str, str]] = {"threshold": "conf"}

    def __init__(self, model: nn.Module, runtime: Any, *, labels: list[str], size: int,
                 resize: str, conf: float = 0.25, iou: float = 0.45, max_det: int = 100,
                 batch_size: int = 16, mean: Sequence[float] = (),
                 std: Sequence[float] = ()) -> None:
        super().__init__(model, runtime, batch_size=batch_size)
        self.labels, self.size, self.resize = list(labels), int(size), resize
        # the network's pixel normalisation after x / 255 (a pretrained trunk's); () for none
        self.mean, self.std = [float(v) for v in mean], [float(v) for v in std]
        self.configure(conf=conf, iou=iou, max_det=max_det)

    def parse_cli(self, args: Sequence[str]) -> list[Any]:
        videos = [a for a in args if Path(a).suffix.lower() in VIDEO_SUFFIXES]
        if videos:
            raise InputError(f"{videos[0]}: a video; give videos with --save OUT.mp4 "
                             "(they are tracked, not mixed with images)")
        return vision.expand_image_args(args)

    def preprocess(self, item: Any, index: int, ctx: dict[str, Any]) -> tuple[torch.Tensor, ...]:
        item = vision.open_input(item, index)
        try:
            image = vision.to_tensor(item, 3, None)
        except InputError as exc:
            raise InputError(f"image {index}: {exc}") from None
        small, _, scale = resize_example(image, torch.zeros(0, 4), self.size, self.resize)
        return small, torch.tensor([*scale, *scale]), image

    def collate(self, examples: list[Any], ctx: dict[str, Any]) -> torch.Tensor:
        return torch.stack([e[0] for e in examples])

    def forward(self, batch: torch.Tensor, ctx: dict[str, Any]) -> list[dict]:
        from taskzoo.tasks.detection.trunk import normalise

        out = unwrap_detector(self.model).decode(self.model(normalise(batch, self.mean, self.std)),
                                                 conf=ctx["conf"], iou=ctx["iou"],
                                                 max_det=ctx["max_det"])
        return [{k: v.float().cpu() if v.is_floating_point() else v.cpu() for k, v in d.items()}
                for d in out]

    def postprocess(self, result: dict, example: Any, ctx: dict[str, Any]) -> Detections:
        _, scale, image = example
        h, w = image.shape[-2:]
        boxes = result["boxes"] / scale
        boxes[:, 0::2] = boxes[:, 0::2].clamp(0, w)
        boxes[:, 1::2] = boxes[:, 1::2].clamp(0, h)
        out = Detections(boxes=[[round(float(v), 1) for v in b] for b in boxes],
                         labels=[self.labels[int(k)] for k in result["labels"]],
                         scores=[round(float(s), 4) for s in result["scores"]])
        out.image = image
        return out

    def format(self, text: str, output: Detections) -> str:
        """path<TAB>N objects: label score [x1,y1,x2,y2], ... for the command line."""
        found = "; ".join(f"{lab} {s:.2f} [{', '.join(f'{v:.0f}' for v in b)}]"
                          for lab, s, b in zip(output["labels"], output["scores"], output["boxes"]))
        return f"{text}\t{len(output['labels'])} objects" + (f": {found}" if found else "")

    def to_json(self, output: Detections) -> dict[str, Any]:
        return dict(output)

    def serve_json(self, output: Detections, item: Any = None) -> list[dict[str, Any]]:
        """Hugging Face's object-detection shape: [{"label", "score", "box": {"xmin", "ymin",
        "xmax", "ymax"}}, ...] in whole pixels of the input image, best first."""
        return [{"label": lab, "score": s, "box": dict(zip(("xmin", "ymin", "xmax", "ymax"),
                                                              (round(v) for v in b)))}
                for lab, s, b in zip(output["labels"], output["scores"], output["boxes"])]

    def save(self, output: Detections, path: Path) -> Path:
        """The input image with its boxes drawn, as PNG."""
        from taskzoo.files import write_bytes

        if output.image is None:
            raise UsageError("this result carries no image to draw on")
        png = draw_png(output.image, output["boxes"], output["labels"], output["scores"])
        target = path.with_suffix(".png")
        write_bytes(target, png)
        return target

    # -- videos and folders of frames, tracked (the CLI's stream hook)
    def stream_cli(self, inputs: Sequence[str], save: str | None, **options: Any) -> list | None:
        """`taskzoo predict detection clip.mp4 --save out.mp4`: None unless the inputs are
        videos (or one folder of frames saved to a video); else one summary per input."""
        from taskzoo.video import track_video

        if not video_request(inputs, save):
            return None
        ctx = self.context([], **self.check_options(options))
        overwrite = bool(ctx.pop("overwrite", False))
        summaries = []
        for src, target in zip(inputs, video_targets(inputs, save)):
            summaries.append(track_video(lambda fr: self.detect_frames(fr, **ctx), Path(src),
                                         target, batch=min(self.batch_size, 8), conf=ctx["conf"],
                                         overwrite=overwrite))
        return summaries

    def detect_frames(self, frames: list[np.ndarray], **options: Any) -> list[dict[str, Any]]:
        """RGB frames -> per frame {"boxes" float32 [N, 4], "scores", "labels" (ids), "names"}."""
        names = {n: i for i, n in enumerate(self.labels)}
        out = []
        for d in self(list(frames), **options):
            out.append({"boxes": np.asarray(d["boxes"], np.float32).reshape(-1, 4),
                        "scores": np.asarray(d["scores"], np.float32),
                        "labels": np.asarray([names[n] for n in d["labels"]], np.int64),
                        "names": list(d["labels"])})
        return out


def unwrap_detector(model: nn.Module) -> Any:
    """The detector inside DDP or an EMA wrapper (what has `loss` and `decode`)."""
    while not hasattr(model, "decode") and hasattr(model, "module"):
        model = model.module
    return model


def draw_png(image: torch.Tensor, boxes: Sequence[Sequence[float]], labels: Sequence[str],
             scores: Sequence[float] | None = None, *, truth: Sequence[Sequence[float]] = (),
             width: int = 2) -> bytes:
    """PNG bytes of `image` (uint8 [3, H, W]) with predicted boxes (a colour per class, with
    label and score) and, when given, true boxes in white underneath."""
    import io

    from PIL import Image
    from torchvision.utils import draw_bounding_boxes

    img = image
    if len(truth):
        img = draw_bounding_boxes(img, torch.tensor(truth, dtype=torch.float32).reshape(-1, 4),
                                  colors="white", width=max(1, width - 1))
    if len(boxes):
        palette = ["#00e676", "#ff5252", "#448aff", "#ffd740", "#e040fb", "#18ffff", "#ff6e40"]
        names = sorted(set(labels))
        text = [f"{lab} {s:.2f}" for lab, s in zip(labels, scores)] if scores is not None \
            else list(labels)
        img = draw_bounding_boxes(img, torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
                                  labels=text, width=width,
                                  colors=[palette[names.index(lab) % len(palette)]
                                          for lab in labels],
                                  font=label_font(), font_size=max(11, image.shape[-1] // 45))
    buf = io.BytesIO()
    Image.fromarray(img.permute(1, 2, 0).numpy()).save(buf, format="PNG")
    return buf.getvalue()


def label_font() -> str | None:
    """A TrueType font for readable labels: DejaVu Sans, which matplotlib ships (PIL's
    built-in bitmap font is 11 px tall whatever the image size)."""
    try:
        from matplotlib import font_manager

        return font_manager.findfont("DejaVu Sans", fallback_to_default=True)
    except Exception:  # no font found: torchvision's default
        return None
