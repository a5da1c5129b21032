"""Port fidelity of `face_resnet` against face-api's TF.js model itself, run on Node.

    TASKZOO_MIRROR=../shared/data python benchmarks/faces_embed_parity.py \
        --node-project NODE_DIR --weights WEIGHTS_DIR [--out OUT_DIR] [--photos photos.txt]

NODE_DIR holds `npm install @vladmandic/face-api@1.7.15 @tensorflow/tfjs@4.22.0
@tensorflow/tfjs-backend-wasm@4.22.0`; WEIGHTS_DIR the safetensors of
`release_faces_embed.py`.

20 real face inputs: 10 ORL faces (s1..s10/1.pgm: the central 92x92 square of the 92x112
grey image, replicated to RGB, resized to 150x150 by PIL's bilinear resize) and 10 crops
from the first ten of `faces_photos.py`'s photos (the largest person box of each from
coco128's labels; its top fifth, made a square of that fifth's height centred on the box,
cropped by PIL with black outside the image, resized to 150x150 bilinear). The inputs are
written once as raw float32 (HWC, 0..255): face-api (benchmarks/faces_embed_parity.mjs,
tfjs's CPU backend) and this port (float32 and float16 weights, computed in float32) read
the very same numbers. Prints per input cosine and max |diff| and writes `parity.txt`.
Acceptance: cosine >= 0.9999 on every input.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file

from taskzoo.models.face_resnet import face_resnet

sys.path.insert(0, str(Path(__file__).parent))
from faces_photos import mirror, photo_list  # noqa: E402

SIDE = 150
MJS = Path(__file__).with_name("faces_embed_parity.mjs")


def orl_inputs(root: Path, count: int = 10) -> list[tuple[str, np.ndarray]]:
    out = []
    for person in range(1, count + 1):
        grey = Image.open(root / "att_faces" / f"s{person}" / "1.pgm").convert("L")
        w, h = grey.size
        top = (h - w) // 2
        square = grey.crop((0, top, w, top + w)).convert("RGB")
        out.append((f"orl/s{person}/1.pgm", np.asarray(square.resize((SIDE, SIDE),
                                                                     Image.BILINEAR))))
    return out


def coco_inputs(photos: list[Path], root: Path, count: int = 10) -> list[tuple[str, np.ndarray]]:
    out = []
    for line in photos[:count]:
        image = Image.open(line).convert("RGB")
        label = root / "coco128" / "labels" / "train2017" / (Path(line).stem + ".txt")
        rows = [r.split() for r in label.read_text().splitlines() if r.split()[:1] == ["0"]]
        _, cx, cy, bw, bh = max(rows, key=lambda r: float(r[3]) * float(r[4]))
        W, H = image.size
        cx, cy, bw, bh = float(cx) * W, float(cy) * H, float(bw) * W, float(bh) * H
        side = bh / 5  # the top fifth of a person box holds the head
        x0, y0 = round(cx - side / 2), round(cy - bh / 2)
        box = (x0, y0, x0 + round(side), y0 + round(side))
        out.append((Path(line).name, np.asarray(image.crop(box).resize((SIDE, SIDE),
                                                                        Image.BILINEAR))))
    return out


def ours(images: np.ndarray, weights: Path) -> np.ndarray:
    net = face_resnet().eval()
    state = {k: v.float() for k, v in load_file(str(weights)).items()}
    net.load_state_dict(state, strict=True)
    x = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
    with torch.inference_mode():
        return net(x).numpy()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--node-project", required=True, help="where face-api and tfjs are installed")
    ap.add_argument("--weights", required=True, help="folder of the safetensors")
    ap.add_argument("--photos", type=Path, help="a text file of photos (default: faces_photos.py's)")
    ap.add_argument("--out", default="faces_embed_parity")
    args = ap.parse_args()
    root = mirror()
    torch.set_num_threads(2)
    named = orl_inputs(root) + coco_inputs(photo_list(args.photos), root)
    names = [n for n, _ in named]
    images = np.stack([a for _, a in named]).astype(np.float32)  # N, 150, 150, 3
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    inputs, theirs_file = out / "parity_inputs.f32", out / "parity_faceapi.f32"
    images.astype("<f4").tofile(inputs)
    subprocess.run(["node", str(MJS), args.node_project, str(inputs), str(len(images)),
                    str(theirs_file)], check=True)
    theirs = np.fromfile(theirs_file, dtype="<f4").reshape(len(images), 128)
    weights = Path(args.weights)
    results = {"fp32": ours(images, weights / "face_resnet.faceapi.safetensors"),
               "fp16": ours(images, weights / "face_resnet.faceapi.fp16.safetensors")}
    lines = [f"face_resnet vs face-api 1.7.15 (tfjs 4.22.0 cpu backend), {len(images)} inputs",
             f"{'input':28s} {'|faceapi|':>9s} {'cos fp32':>10s} {'maxdiff fp32':>12s} "
             f"{'cos fp16':>10s} {'maxdiff fp16':>12s}"]
    worst = {}
    for i, name in enumerate(names):
        row = f"{name:28s} {np.linalg.norm(theirs[i]):9.4f}"
        for kind, got in results.items():
            cos = float(got[i] @ theirs[i] / np.linalg.norm(got[i]) / np.linalg.norm(theirs[i]))
            diff = float(np.abs(got[i] - theirs[i]).max())
            worst[kind] = min(worst.get(kind, (1.0, 0.0))[0], cos), \
                max(worst.get(kind, (1.0, 0.0))[1], diff)
            row += f" {cos:10.7f} {diff:12.2e}"
        lines.append(row)
    for kind, (cos, diff) in worst.items():
        lines.append(f"{kind}: min cosine {cos:.7f}, max |diff| {diff:.2e}, "
                     f"{'PASS' if cos >= 0.9999 else 'FAIL'} (cosine >= 0.9999)")
    text = "\n".join(lines)
    print(text)
    (out / "parity.txt").write_text(text + "\n")
    sys.exit(0 if all(c >= 0.9999 for c, _ in worst.values()) else 1)


if __name__ == "__main__":
    main()
