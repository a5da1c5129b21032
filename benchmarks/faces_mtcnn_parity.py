"""Port fidelity of taskzoo's MTCNN against the original facenet-pytorch 2.6.0 code, and the
share of ORL faces in which it finds exactly one face.

    python benchmarks/faces_mtcnn_parity.py --facenet /path/to/unzipped/wheel \
        [--photos photos.txt] [--orl ../shared/data/att_faces] [--threads 1]

`--facenet` is a folder holding the `facenet_pytorch` package (the wheel unzipped, or a
`pip install --no-deps --target` folder) or the wheel itself; the original runs in a child
process with that folder on its PYTHONPATH, so facenet-pytorch (which pins torch < 2.3) is
never installed here. Both sides read the same weights (the wheel's `data/*.pt`) and run at
min_face 20, thresholds (0.6, 0.7, 0.7), factor 0.709. Per photo: faces found by each, the
largest |difference| of a box coordinate, a landmark coordinate and a probability, after
pairing each original face with our nearest one.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from faces_photos import photo_list  # noqa: E402
from release_faces_mtcnn import mtcnn_state_from_wheel  # noqa: E402

from taskzoo.models import build  # noqa: E402
from taskzoo.tasks.faces.mtcnn import detect  # noqa: E402

# the original, run in a child process: one JSON line per photo
ORIGINAL = """
import json, sys
import numpy as np, torch
from PIL import Image
from facenet_pytorch import MTCNN
torch.set_num_threads(int(sys.argv[1]))
net = MTCNN(keep_all=True, min_face_size=20, thresholds=[0.6, 0.7, 0.7], factor=0.709)
for path in sys.argv[2:]:
    boxes, probs, points = net.detect(Image.open(path).convert("RGB"), landmarks=True)
    found = boxes is not None
    print(json.dumps({"path": path,
                      "boxes": np.asarray(boxes, float).tolist() if found else [],
                      "probs": np.asarray(probs, float).tolist() if found else [],
                      "points": np.asarray(points, float).tolist() if found else []}))
"""


def original(facenet: Path, paths: list[str], threads: int) -> list[dict]:
    env = dict(os.environ, PYTHONPATH=str(facenet))
    out = subprocess.run([sys.executable, "-c", ORIGINAL, str(threads), *paths], env=env,
                         check=True, capture_output=True, text=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def rgb(path: str | Path) -> torch.Tensor:
    return torch.from_numpy(np.asarray(Image.open(path).convert("RGB")).copy()).permute(2, 0, 1)


def compare(ref: dict, ours: tuple[torch.Tensor, ...]) -> dict:
    """Pair each original face with our face of nearest box; the largest differences."""
    rb, rp, rl = (np.asarray(ref[k], float) for k in ("boxes", "probs", "points"))
    ob, op, ol = (t.double().numpy() for t in ours)
    row = {"original": len(rb), "ours": len(ob), "box": 0.0, "landmark": 0.0, "prob": 0.0}
    for i in range(len(rb)):
        if not len(ob):
            break
        j = int(np.abs(ob - rb[i]).max(1).argmin())
        row["box"] = max(row["box"], float(np.abs(ob[j] - rb[i]).max()))
        row["landmark"] = max(row["landmark"], float(np.abs(ol[j] - rl[i]).max()))
        row["prob"] = max(row["prob"], float(abs(op[j] - rp[i])))
    return row


def parity(net: torch.nn.Module, facenet: Path, paths: list[str], threads: int) -> list[str]:
    lines = [f"{'photo':<20} {'orig':>4} {'ours':>4} {'box px':>9} {'mark px':>9} {'prob':>9}"]
    total = {"original": 0, "ours": 0, "box": 0.0, "landmark": 0.0, "prob": 0.0}
    for ref in original(facenet, paths, threads):
        row = compare(ref, detect(net, rgb(ref["path"])))
        lines.append(f"{Path(ref['path']).name:<20} {row['original']:>4} {row['ours']:>4} "
                     f"{row['box']:>9.2e} {row['landmark']:>9.2e} {row['prob']:>9.2e}")
        for key in total:
            total[key] = total[key] + row[key] if key in ("original", "ours") else \
                max(total[key], row[key])
    lines.append(f"{'all ' + str(len(paths)):<20} {total['original']:>4} {total['ours']:>4} "
                 f"{total['box']:>9.2e} {total['landmark']:>9.2e} {total['prob']:>9.2e}")
    return lines


def orl_grey(path: Path, pad: int, mode: str) -> torch.Tensor:
    grey = torch.from_numpy(np.asarray(Image.open(path).convert("L")).copy())[None, None].float()
    if pad:
        grey = torch.nn.functional.pad(grey, (pad,) * 4, mode=mode)
    return grey[0].expand(3, -1, -1).round().to(torch.uint8).contiguous()


def orl(net: torch.nn.Module, folder: Path) -> list[str]:
    paths = sorted(folder.glob("s*/[0-9]*.pgm"))
    lines = []
    for pad, mode in [(0, "constant"), (16, "constant"), (16, "replicate"), (32, "replicate")]:
        counts = [len(detect(net, orl_grey(p, pad, mode))[0]) for p in paths]
        hist = {n: counts.count(n) for n in sorted(set(counts))}
        one = counts.count(1)
        lines.append(f"ORL pad {pad:>2} px {mode:<9}: exactly one face in {one}/{len(paths)} "
                     f"({one / len(paths):.4f}); faces per image {hist}")
    return lines


def weights_of(facenet: Path) -> dict[str, torch.Tensor]:
    if facenet.is_file():
        return mtcnn_state_from_wheel(facenet)
    return mtcnn_state_from_wheel(facenet if (facenet / "facenet_pytorch").is_dir()
                                  else facenet.parent)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--facenet", required=True, type=Path,
                    help="the facenet-pytorch 2.6.0 wheel, or a folder holding facenet_pytorch/")
    ap.add_argument("--photos", type=Path, default=None,
                    help="a text file of image paths, one a line")
    ap.add_argument("--orl", type=Path, default=None, help="the att_faces folder (s1 ... s40)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    net = build("mtcnn").eval()
    net.load_state_dict(weights_of(args.facenet), strict=True)
    paths = [str(p) for p in photo_list(args.photos)]
    with tempfile.TemporaryDirectory() as tmp:
        facenet = args.facenet
        if facenet.is_file():  # a wheel is a zip: unzip it for the child's PYTHONPATH
            zipfile.ZipFile(facenet).extractall(tmp)
            facenet = Path(tmp)
        for line in parity(net, facenet, paths, args.threads):
            print(line, flush=True)
    if args.orl:
        for line in orl(net, args.orl):
            print(line, flush=True)


if __name__ == "__main__":
    main()
