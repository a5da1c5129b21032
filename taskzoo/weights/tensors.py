"""Weights files as tensors: read safetensors only (nothing is ever unpickled), and copy
tensors into a model, checking they fit it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from taskzoo.errors import CheckpointError, RunFileError


def read_weights(path: Path) -> dict[str, Any]:
    """Tensors of a safetensors file. Anything else (a pickle, a torch.save zip) is refused
    before any byte of it is interpreted: taskzoo never unpickles weights."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    try:
        with open(path, "rb") as fh:
            head = fh.read(9)
        size = path.stat().st_size
    except OSError as exc:
        raise RunFileError(f"{path} cannot be read ({exc.strerror or exc})") from None
    if size == 0:
        raise RunFileError(f"{path} is empty (0 bytes), not a safetensors weights file; "
                           "restore it, or train or export the weights again")
    # safetensors: an 8-byte little-endian header length, then the JSON header (that length
    # may well start with byte 0x80, a pickle's mark: the file's shape decides first)
    header_len = int.from_bytes(head[:8], "little") if len(head) >= 9 else 0
    if head[8:9] != b"{" or not 0 < header_len <= size:
        kind = ("a pickle" if head[:1] == b"\x80" else "a zip archive (torch.save?)"
                if head[:2] == b"PK" else "something else")
        raise RunFileError(f"{path} is not a safetensors file (it looks like {kind}); "
                           "taskzoo only reads safetensors and never unpickles weights")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise RunFileError(f"{path}: damaged safetensors file ({_first_line(exc)}); restore "
                           "it, or train or export the weights again") from None


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0][:200] if lines else type(exc).__name__


def load_into(model: Any, tensors: dict[str, Any], *, source: str,
              reinit_mismatched: bool = False,
              base: dict[str, Any] | None = None) -> dict[str, tuple[list[int], list[int]]]:
    """Copy `tensors` into `model`, cast to each parameter's dtype (fp16 files into fp32 nets).

    Names missing on either side mean another architecture: a CheckpointError. A tensor of
    another shape (a head for another number of classes) is an error too, unless
    `reinit_mismatched`: then the model keeps its fresh initialisation there, and the
    returned {name: (shape in the file, shape in the model)} says which ones.

    `base` is a card's `extra.base`: the file holds only what fine-tuning changed, the rest
    is the pretrained encoder the model was built with (`model.pretrained_base`, filled by
    the task), which must be the very one the weights were fine-tuned from."""
    own = model.state_dict()
    tensors = dequantized(tensors, source)
    filled = _base_names(model, base, source)
    if base and base.get("delta_rank"):  # changes stored as low-rank factors over the base
        tensors = dict(tensors)
        for key in [k for k in tensors if k.endswith(".delta_u")]:
            name = key.removesuffix(".delta_u")
            v = tensors.pop(f"{name}.delta_v", None)
            if name not in own or v is None:
                raise CheckpointError(f"{source}: low-rank factor {key} has no match in this "
                                      "model or no .delta_v beside it")
            tensors[name] = own[name].float() + tensors.pop(key).float() @ v.float()
    missing = sorted(set(own) - set(tensors) - filled)
    unexpected = sorted(set(tensors) - set(own))
    shapes = {k: (list(tensors[k].shape), list(own[k].shape)) for k in own
              if k in tensors and tuple(own[k].shape) != tuple(tensors[k].shape)}
    if missing or unexpected or (shapes and not reinit_mismatched):
        raise CheckpointError(
            f"{source} does not fit this model: missing {missing[:5]}, unexpected "
            f"{unexpected[:5]}, shape mismatch {list(shapes)[:5]}")
    model.load_state_dict({k: own[k] if k in shapes or k not in tensors
                           else tensors[k].to(own[k].dtype) for k in own})
    return shapes


def dequantized(tensors: dict[str, Any], source: str) -> dict[str, Any]:
    """`tensors` with each uint8-quantised one (`<name>.q8`, `<name>.q8_scale`,
    `<name>.q8_min`: TF.js's affine quantisation, kept as a third-party file publishes it)
    turned into float32 `<name>` = q * scale + min, computed in float64 as TF.js does."""
    import torch

    if not any(k.endswith(".q8") for k in tensors):
        return tensors
    out = dict(tensors)
    for key in [k for k in out if k.endswith(".q8")]:
        name = key.removesuffix(".q8")
        scale, low = out.pop(f"{name}.q8_scale", None), out.pop(f"{name}.q8_min", None)
        q = out.pop(key)
        if scale is None or low is None or q.dtype != torch.uint8:
            raise CheckpointError(f"{source}: quantised tensor {key} lacks its .q8_scale or "
                                  ".q8_min, or is not uint8")
        out[name] = (q.double() * scale.double() + low.double()).float()
    return out


def _base_names(model: Any, base: dict[str, Any] | None, source: str) -> set[str]:
    """The state-dict names the model's pretrained base filled, when the weights say they
    were fine-tuned from that same base (by its weights' sha256); else none."""
    if not base:
        return set()
    have = getattr(model, "pretrained_base", None)
    if not have:
        raise CheckpointError(f"{source} was fine-tuned from {base.get('repo')} and holds only "
                              "what changed, but this model was built without that encoder")
    if have.get("sha256") != base.get("sha256"):
        raise CheckpointError(
            f"{source} was fine-tuned from {base.get('repo')}@{str(base.get('revision'))[:12]} "
            f"(weights sha256 {str(base.get('sha256'))[:12]}...), but the encoder here is "
            f"{have.get('repo')}@{str(have.get('revision'))[:12]} (sha256 "
            f"{str(have.get('sha256'))[:12]}...)")
    return {have["prefix"] + n for n in have["names"]}

