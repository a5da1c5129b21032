"""The faces predictor: photos in (paths, folders, PIL images, arrays, tensors); per photo
its faces' boxes, scores and five landmarks, and with a gallery a name and a distance per
face. Videos and folders of frames go through `taskzoo.video`: faces are tracked and a
track keeps the name it was recognised by.

    >>> faces = taskzoo.load("faces", gallery="people/")       # doctest: +SKIP
    >>> faces("team.jpg")                                      # doctest: +SKIP
    {'boxes': [[101.2, 40.8, 160.5, 118.0]], 'scores': [0.99], 'landmarks': [[[118.3, 70.1],
     ...]], 'names': ['alice'], 'distances': [0.41]}
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from taskzoo.data import vision
from taskzoo.errors import InputError, UsageError
from taskzoo.tasks.base import CallOption, Predictor
from taskzoo.tasks.faces.gallery import UNKNOWN, Gallery
from taskzoo.tasks.faces.pipeline import DETECTORS, describe, find_faces
from taskzoo.video import VIDEO_SUFFIXES


class FaceResult(dict):
    """One photo's faces, best first: {"boxes": [[x1, y1, x2, y2]], "scores", "landmarks":
    [[[x, y] x 5]] (left eye, right eye, nose, mouth corners, as seen in the photo)}, plus
    "names" and "distances" with a gallery; `.image` is the input (uint8 [3, H, W])."""

    image: torch.Tensor | None = None


class FacesPredictor(Predictor):
    """Faces, landmarks and (with `gallery=`) names for photos and videos."""

    input_noun = "image"
    onnx_methods = ("rfb320.forward", "slim320.forward", "mtcnn.pnet.forward",
                    "mtcnn.rnet.forward", "mtcnn.onet.forward", "embedder.forward")
    onnx_python = ("the image pyramid, box regression and NMS between the cascade's "
                   "networks, face alignment and the gallery search")
    call_options: ClassVar[tuple[CallOption, ...]] = (
        CallOption("detector", str, help="what finds faces", choices=DETECTORS,
                   metavar="NAME"),
        CallOption("conf", float, help="score threshold", low=0, high=1, metavar="C"),
        CallOption("size", int, help="faces: Ultra-Light's input width, 4:3 (320: 320x240, "
                   "as trained; 640: 640x480, smaller faces, 4x the time)", low=160, high=1280,
                   metavar="W"),
        CallOption("iou", float, help="NMS IoU threshold", low=0, high=1, metavar="T"),
        CallOption("min_face", int, help="faces: drop faces narrower than N pixels", low=1,
                   metavar="N", expect=">= 1"),
        CallOption("verify", float, help="faces: the O-Net face probability an rfb320/slim320 "
                   "box must also reach (0 keeps all; 0.7 drops backs of heads)", low=0, high=1,
                   metavar="P"),
        CallOption("gallery", str, help="a folder with one subfolder of photos per person: "
                   "name each face", metavar="DIR", serve=False),
        CallOption("threshold", float, help="faces: the largest descriptor distance that "
                   "is still the same person", low=0, low_open=True, metavar="D"),
        CallOption("overwrite", bool, help="a video's --save OUT.mp4: replace OUT (and "
                   "OUT.jsonl) even when taskzoo did not write it", serve=False),
    )
    serve_input: ClassVar[str] = "image"

    def __init__(self, model: nn.Module, runtime: Any, *, detector: str = "rfb320",
                 conf: float = 0.7, iou: float = 0.3, min_face: int = 20,
                 verify: float = 0.0, size: int = 320, threshold: float = 0.55,
                 gallery: str = "") -> None:
        super().__init__(model, runtime, batch_size=1)
        self.configure(detector=detector, conf=conf, iou=iou, min_face=min_face, verify=verify,
                       size=size, threshold=threshold)
        self.gallery = gallery
        self._key = ""

    # -- the gallery
    def networks_key(self) -> str:
        """What identifies the descriptors a gallery cache holds: the networks' weights."""
        if not self._key:
            h = hashlib.sha256()
            for name, t in sorted(self.model.state_dict().items()):
                if name.startswith(("embedder.", "mtcnn.onet.")):
                    h.update(name.encode())
                    h.update(t.detach().float().cpu().numpy().tobytes())
            self._key = h.hexdigest()[:24]
        return self._key

    def load_gallery(self, folder: str, **options: Any) -> Gallery:
        """The gallery in `folder`, described with this predictor's networks and options;
        described photos are cached (taskzoo's cache folder) until they change."""
        from taskzoo import hub

        ctx = {**self.option_defaults(), **self.check_options(options)}
        key = (f"{self.networks_key()}-{ctx['detector']}-{ctx['conf']}-{ctx['min_face']}"
               f"-{ctx['verify']}-{ctx['size']}")

        def describe_photo(path: Path) -> torch.Tensor | None:
            image = self.runtime.to_device(self._image(path, 0))
            faces = find_faces(self.model, image, detector=ctx["detector"], conf=ctx["conf"],
                               iou=ctx["iou"], min_face=ctx["min_face"], verify=ctx["verify"],
                               size=ctx["size"])
            if not len(faces):
                return None
            area = (faces.boxes[:, 2] - faces.boxes[:, 0]) * (faces.boxes[:, 3] - faces.boxes[:, 1])
            largest = faces.take(area.argmax().reshape(1))
            return describe(self.model, image, largest.landmarks)[0]

        # read again on every call: the cache file says which photos changed since
        with self.runtime.inference():
            return Gallery.load(folder, describe_photo, key=key,
                                cache=hub.cache_root() / "faces" / "galleries")

    # -- photos
    def parse_cli(self, args: Sequence[str]) -> list[Any]:
        videos = [a for a in args if Path(a).suffix.lower() in VIDEO_SUFFIXES]
        if videos:
            raise InputError(f"{videos[0]}: a video; give videos with --save OUT.mp4 "
                             "(they are tracked, not mixed with images)")
        return vision.expand_image_args(args)

    def _image(self, item: Any, index: int) -> torch.Tensor:
        item = vision.open_input(item, index)
        try:
            return vision.to_tensor(item, 3, None)
        except InputError as exc:
            raise InputError(f"image {index}: {exc}") from None

    def context(self, items: list[Any], **options: Any) -> dict[str, Any]:
        ctx = super().context(items, **options)
        ctx["gallery_set"] = self.load_gallery(ctx["gallery"], **{
            k: ctx[k] for k in ("detector", "conf", "iou", "min_face", "verify", "size")}) \
            if ctx["gallery"] else None
        return ctx

    def onnx_examples(self, items: list[Any]) -> None:
        """Every detector, then the descriptor network on a face found: what a gallery and
        `detector=` reach, so each network has its graph."""
        super().onnx_examples(items)
        for detector in DETECTORS:
            self(items[:2], detector=detector)
        ctx = self.option_defaults()
        with self.runtime.inference():
            image = self.runtime.to_device(self._image(items[0], 0))
            faces = find_faces(self.model, image, detector="mtcnn", conf=ctx["conf"],
                               iou=ctx["iou"], min_face=ctx["min_face"], verify=ctx["verify"],
                               size=ctx["size"])
            if len(faces):
                describe(self.model, image, faces.landmarks)

    def preprocess(self, item: Any, index: int, ctx: dict[str, Any]) -> torch.Tensor:
        return self._image(item, index)

    def collate(self, examples: list[Any], ctx: dict[str, Any]) -> list[torch.Tensor]:
        return list(examples)

    def forward(self, batch: list[torch.Tensor], ctx: dict[str, Any]) -> list[dict]:
        out = []
        for image in batch:
            faces = find_faces(self.model, image, detector=ctx["detector"], conf=ctx["conf"],
                               iou=ctx["iou"], min_face=ctx["min_face"], verify=ctx["verify"],
                               size=ctx["size"])
            result: dict[str, Any] = {"faces": faces}
            gallery = ctx["gallery_set"]
            if gallery is not None:
                desc = describe(self.model, image, faces.landmarks)
                result["names"], result["distances"] = gallery.identify(
                    desc, threshold=ctx["threshold"])
            out.append(result)
        return out

    def postprocess(self, result: dict, example: torch.Tensor, ctx: dict[str, Any]) -> FaceResult:
        faces = result["faces"]
        out = FaceResult(boxes=[[round(float(v), 1) for v in b] for b in faces.boxes],
                         scores=[round(float(s), 4) for s in faces.scores],
                         landmarks=[[[round(float(v), 1) for v in p] for p in m]
                                    for m in faces.landmarks])
        if "names" in result:
            out.update(names=result["names"], distances=result["distances"])
        out.image = example.cpu()
        return out

    def format(self, text: str, output: FaceResult) -> str:
        """path<TAB>N faces: [name distance] score [x1,y1,x2,y2]; ... for the command line."""
        names = output.get("names")
        parts = []
        for i, (s, b) in enumerate(zip(output["scores"], output["boxes"])):
            who = f"{names[i]} {output['distances'][i]:.2f} " if names else ""
            parts.append(f"{who}{s:.2f} [{', '.join(f'{v:.0f}' for v in b)}]")
        n = len(output["scores"])
        return f"{text}\t{n} face{'s' if n != 1 else ''}" + (f": {'; '.join(parts)}" if parts else "")

    def to_json(self, output: FaceResult) -> dict[str, Any]:
        return dict(output)

    def save(self, output: FaceResult, path: Path) -> Path:
        """The photo with boxes, landmarks and names drawn, as PNG."""
        from taskzoo.files import write_bytes
        from taskzoo.tasks.faces.report import draw_faces_png

        if output.image is None:
            raise UsageError("this result carries no image to draw on")
        target = path.with_suffix(".png")
        write_bytes(target, draw_faces_png(output.image, output))
        return target

    # -- videos and folders of frames, tracked
    def stream_cli(self, inputs: Sequence[str], save: str | None, **options: Any) -> list | None:
        """`taskzoo predict faces clip.mp4 --save out.mp4 [--gallery people/]`: None unless
        the inputs are videos (or one folder of frames saved to a video)."""
        from taskzoo.video import track_video
        from taskzoo.video.output import video_request, video_targets

        if not video_request(inputs, save):
            return None
        ctx = self.context([], **self.check_options(options))
        overwrite = bool(ctx.pop("overwrite", False))
        return [track_video(lambda fr: self.detect_frames(fr, ctx), Path(src), target, batch=4,
                            conf=ctx["conf"], overwrite=overwrite,
                            names_by_track=ctx["gallery_set"] is not None, abstain=UNKNOWN)
                for src, target in zip(inputs, video_targets(inputs, save))]

    def detect_frames(self, frames: list[np.ndarray], ctx: dict[str, Any]) -> list[dict[str, Any]]:
        """RGB frames -> per frame {"boxes", "scores", "labels", "names"} for the tracker: the
        person's name with a gallery, else "face"."""
        out = []
        with self.runtime.inference():
            for result in self.forward([torch.from_numpy(f).permute(2, 0, 1).contiguous()
                                        for f in frames], ctx):
                faces = result["faces"]
                names = result.get("names") or ["face"] * len(faces)
                out.append({"boxes": faces.boxes.numpy().astype(np.float32),
                            "scores": faces.scores.numpy().astype(np.float32),
                            "labels": np.zeros(len(faces), np.int64), "names": list(names)})
        return out
