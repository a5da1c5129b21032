"""The files a run leaves behind for resuming and delivery: last.ckpt (model, optimizer,
scheduler, RNG and source states of every process) and best.safetensors (the weights).

The Trainer decides what goes into a checkpoint and when; this module reads and writes the
files, checks their format and world size, and turns RNG states into what
`torch.load(weights_only=True)` accepts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file
from torch import nn

from taskzoo.errors import CheckpointError, RunFileError
from taskzoo.files import atomic_path

CKPT_FORMAT = 2  # 2: world size and per-process RNG/source states; 1 is still read
# What to do about a last.ckpt that cannot be resumed from: nothing else holds its state.
_FRESH = ("--resume cannot continue from it: restore the file, or start the run afresh with "
          "--overwrite (or a new --out)")


def save_weights(model: nn.Module, path: Path) -> None:
    """The model's state dict as safetensors on the CPU, written atomically."""
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={"format": "pt"})


def load_weights(path: Path, device: torch.device | str) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file, placed on `device`."""
    from safetensors.torch import load_file

    return load_file(str(path), device=str(device))


def write_checkpoint(path: Path, ckpt: dict[str, Any]) -> None:
    """`ckpt` (built by the Trainer, `format` CKPT_FORMAT) written atomically to `path`."""
    with atomic_path(path) as tmp:
        torch.save(ckpt, tmp)


def read_checkpoint(path: Path, world_size: int) -> dict[str, Any]:
    """The checkpoint at `path`, upgraded to the current format (a format 1 checkpoint gets
    its one process's `ranks` entry); a CheckpointError when it cannot be read, is not a
    taskzoo checkpoint, or was written by a run of another number of processes."""
    if path.is_file() and path.stat().st_size == 0:
        raise RunFileError(f"Cannot read checkpoint {path}: it is empty (0 bytes); {_FRESH}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # torch's reasons run to many lines and advise unsafe loading
        raise RunFileError(f"Cannot read checkpoint {path}: it is damaged or not a file "
                           f"taskzoo wrote; {_FRESH}") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") not in (1, CKPT_FORMAT):
        raise RunFileError(f"{path} is not a taskzoo checkpoint (format {CKPT_FORMAT}); {_FRESH}")
    missing = [k for k in ("model", "optimizer", "scheduler", "state",
                           "rng" if ckpt["format"] == 1 else "ranks") if k not in ckpt]
    if missing:
        raise RunFileError(f"{path} is a taskzoo checkpoint without {', '.join(missing)}; "
                           f"{_FRESH}")
    if ckpt["format"] == 1:  # one process; rng and source at the top level
        ckpt["ranks"] = [{"rng": ckpt["rng"], "source": ckpt.get("source") or {}}]
    world, now = int(ckpt.get("world_size", 1)), world_size
    if world != now:
        # each process's share of every epoch and its random streams depend on the count
        raise CheckpointError(
            f"{path} was written by a run of {world} process(es), this one has {now}: resume "
            f"it with {world} (" + ("no torchrun" if world == 1 else
                                    f"torchrun --nproc_per_node {world} ...") + ")")
    return ckpt


def rng_to_tensors(state: dict[str, Any]) -> dict[str, Any]:
    """`runtime.rng_state()` in tensors and plain containers."""
    # weights_only loading accepts tensors and plain containers, not numpy arrays.
    version, internal, gauss = state["python"]
    name, keys, pos, has_gauss, cached = state["numpy"]
    out = {
        "python": [version, torch.tensor(internal, dtype=torch.int64), gauss],
        "numpy": [name, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss),
                  float(cached)],
        "torch": state["torch"],
    }
    if "cuda" in state:
        out["cuda"] = state["cuda"]
    return out


def rng_from_tensors(state: dict[str, Any]) -> dict[str, Any]:
    """The inverse of `rng_to_tensors`: what `runtime.set_rng_state` takes."""
    version, internal, gauss = state["python"]
    name, keys, pos, has_gauss, cached = state["numpy"]
    out = {
        "python": (version, tuple(int(x) for x in internal.tolist()), gauss),
        "numpy": (name, keys.numpy().astype(np.uint32), pos, has_gauss, cached),
        "torch": state["torch"],
    }
    if "cuda" in state:
        out["cuda"] = state["cuda"]
    return out
