"""Convert face-api's TF.js face recognition weights to safetensors for `models.face_resnet`.

    python benchmarks/release_faces_embed.py --package /path/to/@vladmandic/face-api \
        [--out OUT_DIR]

The npm package @vladmandic/face-api 1.7.15 (MIT, github.com/vladmandic/face-api) ships
`model/face_recognition_model-weights_manifest.json` and `face_recognition_model.bin`: a
TF.js port of dlib's `dlib_face_recognition_resnet_model_v1` (Davis King, who released it
into the public domain: github.com/davisking/dlib-models README; trained from scratch on
about 3 million faces of 7485 identities from FaceScrub, VGG-Face and web images, none of
them LFW identities; published 99.38 % on LFW). Most tensors are uint8-quantised with
a per-tensor scale and min; TF.js dequantises them as `q * scale + min` in double precision
and stores the result as float32, which `faceapi_state` reproduces bit for bit. Filters are
HWIO and become OIHW; `fc` [256, 128] becomes `fc.weight` [128, 256].

Writes `face_resnet.faceapi.safetensors` (float32, the values TF.js computes with) and
`face_resnet.faceapi.fp16.safetensors` (float16, half the size), and prints their sha256
and sizes. The release card is made from these later; this script adds nothing to
taskzoo/released.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from taskzoo.models.face_resnet import FACEAPI_BLOCKS, FACEAPI_STEM, face_resnet

MANIFEST = "face_recognition_model-weights_manifest.json"
# face-api's leaf names -> ours (inside a conv+scale unit)
_LEAVES = {"conv/filters": "conv.weight", "conv/bias": "conv.bias",
           "scale/weights": "scale.weight", "scale/biases": "scale.bias"}
_DTYPES = {"float32": np.float32, "int32": np.int32}


def _key(name: str) -> str:
    """face-api's weight name -> this port's state-dict key."""
    if name == "fc":
        return "fc.weight"
    unit, _, leaf = name.partition("/")
    if unit == FACEAPI_STEM:
        return f"stem.{_LEAVES[leaf]}"
    conv, _, leaf = leaf.partition("/")
    return f"blocks.{FACEAPI_BLOCKS.index(unit)}.{conv}.{_LEAVES[leaf]}"


def _decode(spec: dict, raw: bytes) -> np.ndarray:
    """One manifest entry's bytes -> its float32 (or int32) values, as TF.js decodes them."""
    quant = spec.get("quantization")
    if quant is None:
        return np.frombuffer(raw, dtype=_DTYPES[spec["dtype"]]).copy()
    if quant["dtype"] not in ("uint8", "uint16"):
        raise ValueError(f"{spec['name']}: quantization {quant['dtype']} is not handled here")
    q = np.frombuffer(raw, dtype=np.uint8 if quant["dtype"] == "uint8" else np.uint16)
    # JavaScript numbers are doubles: q * scale + min in float64, then stored in a Float32Array
    return (q.astype(np.float64) * quant["scale"] + quant["min"]).astype(np.float32)


def _nbytes(spec: dict) -> int:
    count = int(np.prod(spec["shape"], dtype=np.int64))
    quant = spec.get("quantization")
    if quant is not None:
        return count * (1 if quant["dtype"] == "uint8" else 2)
    return count * np.dtype(_DTYPES[spec["dtype"]]).itemsize


def _layout(tensor: torch.Tensor) -> torch.Tensor:
    if tensor.ndim == 4:
        return tensor.permute(3, 2, 0, 1)  # HWIO -> OIHW
    if tensor.ndim == 2:
        return tensor.t()  # [in, out] -> nn.Linear's [out, in]
    return tensor


def faceapi_quantized(package_dir: str | Path) -> dict[str, torch.Tensor]:
    """face-api's weights as published: each uint8-quantised tensor as `<key>.q8` (uint8, in
    this port's layout) with `<key>.q8_scale` and `<key>.q8_min` (float64 scalars), which
    `taskzoo.weights.load_into` turns back into exactly `faceapi_state`'s float32 values; the
    unquantised tensors as float32 under their keys. A quarter of float32's size, and
    lossless against the source."""
    out: dict[str, torch.Tensor] = {}
    for spec, raw in _entries(package_dir):
        key, quant = _key(spec["name"]), spec.get("quantization")
        if quant is None or quant["dtype"] != "uint8":
            values = _decode(spec, raw).reshape(spec["shape"])
            out[key] = _layout(torch.from_numpy(values)).contiguous()
            continue
        q = np.frombuffer(raw, dtype=np.uint8).reshape(spec["shape"]).copy()
        out[f"{key}.q8"] = _layout(torch.from_numpy(q)).contiguous()
        out[f"{key}.q8_scale"] = torch.tensor(quant["scale"], dtype=torch.float64)
        out[f"{key}.q8_min"] = torch.tensor(quant["min"], dtype=torch.float64)
    return out


def _entries(package_dir: str | Path):
    """(manifest entry, its bytes) in manifest order."""
    model_dir = Path(package_dir) / "model"
    groups = json.loads((model_dir / MANIFEST).read_text())
    for group in groups:
        # a group's shards are one byte stream, its weights laid end to end in manifest order
        blob = b"".join((model_dir / p).read_bytes() for p in group["paths"])
        offset = 0
        for spec in group["weights"]:
            size = _nbytes(spec)
            yield spec, blob[offset:offset + size]
            offset += size
        if offset != len(blob):
            raise ValueError(f"{model_dir}: {len(blob) - offset} bytes left after the manifest")


def faceapi_state(package_dir: str | Path) -> dict[str, torch.Tensor]:
    """face-api's face recognition weights (from `package_dir`/model) as a float32 state dict
    that loads strictly into `face_resnet()`."""
    model_dir = Path(package_dir) / "model"
    groups = json.loads((model_dir / MANIFEST).read_text())
    state: dict[str, torch.Tensor] = {}
    for group in groups:
        # a group's shards are one byte stream, its weights laid end to end in manifest order
        blob = b"".join((model_dir / p).read_bytes() for p in group["paths"])
        offset = 0
        for spec in group["weights"]:
            size = _nbytes(spec)
            values = _decode(spec, blob[offset:offset + size]).reshape(spec["shape"])
            offset += size
            tensor = torch.from_numpy(values)
            if tensor.ndim == 4:
                tensor = tensor.permute(3, 2, 0, 1)  # HWIO -> OIHW
            elif tensor.ndim == 2:
                tensor = tensor.t()  # [in, out] -> nn.Linear's [out, in]
            state[_key(spec["name"])] = tensor.contiguous()
        if offset != len(blob):
            raise ValueError(f"{model_dir}: {len(blob) - offset} bytes left after the manifest")
    return state


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--package", required=True,
                    help="the unpacked npm package @vladmandic/face-api 1.7.15")
    ap.add_argument("--out", default="faces_embed_weights")
    args = ap.parse_args()
    state = faceapi_state(args.package)
    face_resnet().load_state_dict(state, strict=True)  # every key present, every shape right
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    meta = {"source": "npm @vladmandic/face-api 1.7.15 model/face_recognition_model.bin",
            "license": "MIT (face-api TF.js conversion); dlib model: public domain (Davis King)"}
    files = {out / "face_resnet.faceapi.safetensors": state,
             out / "face_resnet.faceapi.fp16.safetensors":
                 {k: v.half() for k, v in state.items()}}
    for path, tensors in files.items():
        save_file(tensors, str(path), metadata=meta)
        print(f"{path}  {path.stat().st_size} bytes  sha256 {_sha256(path)}")
    print(f"{len(state)} tensors, {sum(v.numel() for v in state.values())} parameters")


if __name__ == "__main__":
    main()
