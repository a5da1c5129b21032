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

from taskzoo.errors import CheckpointError
from taskzoo.files import atomic_path

CKPT_FORMAT = 2  # 2: world size and per-process RNG/source states; 1 is still read


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
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt or foreign file: say so instead of a torch traceback
        raise CheckpointError(f"Cannot read checkpoint {path}: {exc}") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") not in (1, CKPT_FORMAT):
        raise CheckpointError(f"{path} is not a taskzoo checkpoint (format {CKPT_FORMAT})")
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
