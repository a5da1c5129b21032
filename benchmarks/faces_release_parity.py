"""The released float16 faces networks against the float32 conversions they were made from.

    TASKZOO_MIRROR=../shared/data python benchmarks/faces_release_parity.py \\
        --facenet-wheel facenet_pytorch-2.6.0-py3-none-any.whl --faceapi package/ \\
        [--photos photos.txt]

The float32 conversions equal the original code (faces_ultraface_parity.py,
faces_mtcnn_parity.py, faces_embed_parity.py). This closes the chain to what users load:
on the same photos, RFB-320, slim-320 and MTCNN from `face_pipeline.widerface_dlib` must
find the same faces with boxes within 1 px (landmarks too), and the descriptors of every
face found must have cosine >= 0.9999 with the float32 ones.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

import taskzoo
from taskzoo.models import build
from taskzoo.tasks.faces import mtcnn, ultraface
from taskzoo.tasks.faces.pipeline import describe, find_faces

sys.path.insert(0, str(Path(__file__).parent))
from faces_photos import photo_list  # noqa: E402
from release_faces import pipeline_state  # noqa: E402


def read(path: str) -> torch.Tensor:
    from torchvision.io import ImageReadMode, decode_image

    return decode_image(path, mode=ImageReadMode.RGB)


def worst(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max()) if len(a) else 0.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--facenet-wheel", type=Path, required=True)
    ap.add_argument("--faceapi", type=Path, required=True)
    ap.add_argument("--photos", type=Path, help="a text file of photos (default: faces_photos.py's)")
    args = ap.parse_args()
    ref = build("face_pipeline")
    ref.load_state_dict(pipeline_state(args.facenet_wheel, args.faceapi), strict=True)
    ref.eval()
    released = taskzoo.load("faces", device="cpu").model
    photos = [str(p) for p in photo_list(args.photos)]
    stats = {k: [0, 0, 0.0, 0.0] for k in ("rfb320", "slim320", "mtcnn")}  # faces, same, box, marks
    cosines = []
    with torch.inference_mode():
        for path in photos:
            image = read(path)
            for name in ("rfb320", "slim320"):
                (b32, _), (b16, _) = (ultraface.detect(getattr(n, name), image) for n in (ref, released))
                s = stats[name]
                s[0] += len(b32)
                s[1] += len(b32) == len(b16)
                s[2] = max(s[2], worst(b32, b16) if len(b32) == len(b16) else float("inf"))
            d32, d16 = mtcnn.detect(ref.mtcnn, image), mtcnn.detect(released.mtcnn, image)
            s = stats["mtcnn"]
            s[0] += len(d32[0])
            same = len(d32[0]) == len(d16[0])
            s[1] += same
            s[2] = max(s[2], worst(d32[0], d16[0]) if same else float("inf"))
            s[3] = max(s[3], worst(d32[2], d16[2]) if same else float("inf"))
            faces = find_faces(ref, image)
            if len(faces):
                a, b = describe(ref, image, faces.landmarks), describe(released, image, faces.landmarks)
                cosines += torch.nn.functional.cosine_similarity(a, b).tolist()
    print(f"{len(photos)} photos; float32 conversion vs released float16")
    for name, (n, same, box, marks) in stats.items():
        extra = f", max |landmark diff| {marks:.3f} px" if name == "mtcnn" else ""
        print(f"  {name:8s} faces {n}, same count on {same}/{len(photos)} photos, max |box diff| "
              f"{box:.3f} px{extra}")
    print(f"  descriptor of {len(cosines)} faces: min cosine {min(cosines):.7f}")


if __name__ == "__main__":
    main()
