"""Device, precision and distribution: the only module that knows about CUDA, AMP and DDP.

A Runtime changes no process-wide setting when it is made. What a run needs (its thread
count, its CUDA device, TF32 on or off, flushing denormals on the CPU) is applied by
`with runtime.activate():` and the caller's settings are restored on the way out, so a
notebook behaves the same after `taskzoo.run(...)` as before it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from taskzoo.errors import ConfigError

PRECISIONS = ("32", "tf32", "bf16-mixed", "16-mixed")


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' -> cuda, then mps, then cpu; an explicit device that is absent is an error.

    >>> resolve_device("cpu")
    device(type='cpu')
    """
    name = (name or "auto").strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return _default_cuda()
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise ConfigError(
            f"device={name!r}: expected auto, cpu, cuda, cuda:N or mps"
        ) from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device={name!r}: CUDA is not available here (use device=cpu or auto)")
        if dev.index is None:  # torch.cuda.set_device and DDP want an explicit index
            dev = _default_cuda()
        if dev.index >= torch.cuda.device_count():
            raise ConfigError(
                f"device={name!r}: only {torch.cuda.device_count()} CUDA device(s) present"
            )
    elif dev.type == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise ConfigError(f"device={name!r}: MPS is not available here (use device=cpu or auto)")
    elif dev.type != "cpu":
        raise ConfigError(f"device={name!r}: expected auto, cpu, cuda, cuda:N or mps")
    return dev


def _default_cuda() -> torch.device:
    """This process's GPU: its local rank under torchrun, else GPU 0."""
    return torch.device("cuda", _local_rank() if _world_size() > 1 else 0)


def _world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def _local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def rank_seed(seed: int, rank: int = 0) -> int:
    """The seed of one DDP process: `seed` itself on rank 0 (a single-process run is
    unchanged), an independent stream derived from (seed, rank) on the others, so dropout
    and sampling differ between processes.

    >>> rank_seed(7), rank_seed(7, 1) != rank_seed(7)
    (7, True)
    """
    if rank == 0:
        return seed
    return int(np.random.SeedSequence([seed, rank]).generate_state(1, dtype=np.uint64)[0] >> 1)


def seed_everything(seed: int, rank: int = 0) -> None:
    """Seed python, numpy and torch (all devices) with `rank_seed(seed, rank)`."""
    seed = rank_seed(seed, rank)
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    """Every RNG state a training step can consume, for exact resume."""
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(_to_python_tuple(state["python"]))
    np.random.set_state(tuple(state["numpy"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


@contextlib.contextmanager
def preserved_rng() -> Iterator[None]:
    """Restore the caller's python, numpy and torch random streams on exit (a run seeds and
    draws from them; the caller's own sequence of numbers must not depend on that)."""
    saved = rng_state()
    try:
        yield
    finally:
        set_rng_state(saved)


def flush_denormal_enabled() -> bool:
    """Whether this thread flushes denormal floats to zero (torch has no getter for it: a
    product that underflows into the denormal range reads 0.0 exactly when it does)."""
    tiny = torch.tensor([1e-30], dtype=torch.float32)
    return float(tiny * tiny.new_tensor([1e-10])) == 0.0


def _to_python_tuple(obj: Any) -> Any:
    # random.setstate needs tuples; checkpoints may hand back lists.
    if isinstance(obj, list):
        return tuple(_to_python_tuple(o) for o in obj)
    if isinstance(obj, tuple):
        return tuple(_to_python_tuple(o) for o in obj)
    return obj


# Environment variables through which a user already chose how memory is allocated
ALLOCATOR_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_ARENA_MAX",
                      "GLIBC_TUNABLES", "LD_PRELOAD")


def tune_allocator(threshold: int = 1 << 30) -> bool:
    """For a program that trains on the CPU: let glibc's malloc keep freed blocks of up to
    `threshold` bytes for reuse instead of handing each back to the kernel. By default every
    activation over 32 MB is a fresh mmap whose pages the kernel zeroes on each step:
    EfficientNet-Lite0 training at 224 px spent 28 % of its CPU time there (1.73 -> 1.28 s
    a step on 2 cores). The price is memory held after a peak.

    This changes the whole process and cannot be undone, so taskzoo never calls it behind
    a user's back: the `taskzoo` command and `taskzoo bench` call it for their own
    processes; a Python program calls it once at its start. It does nothing, returning
    False, off glibc or when the environment already chooses the allocator (MALLOC_*_,
    GLIBC_TUNABLES, LD_PRELOAD).

    >>> from taskzoo.runtime import tune_allocator
    >>> tune_allocator()  # doctest: +SKIP
    True
    """
    import ctypes
    import platform
    import sys

    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc" \
            or any(os.environ.get(k) for k in ALLOCATOR_SETTINGS):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    value = ctypes.c_int(min(int(threshold), 2**31 - 1))
    m_trim_threshold, m_mmap_threshold = -1, -3  # malloc.h
    return bool(libc.mallopt(m_mmap_threshold, value)) and bool(
        libc.mallopt(m_trim_threshold, value))


@dataclass
class Runtime:
    """Where and how tensors compute.

    >>> rt = Runtime.create(device="cpu", precision="32")
    >>> rt.device.type
    'cpu'
    """

    device: torch.device
    precision: str = "32"
    world_size: int = 1
    rank: int = 0
    scaler: Any = field(default=None, repr=False)

    threads: int = 0  # CPU threads during activate(); 0 keeps the caller's count
    channels_last: bool = False  # image models and batches in NHWC memory layout

    @classmethod
    def create(cls, *, device: str = "auto", precision: str = "32", threads: int = 0,
               channels_last: bool = False) -> Runtime:
        """Check the device and precision; under torchrun, join the process group. Changes
        no process-wide setting: see `activate()`."""
        if precision not in PRECISIONS:
            raise ConfigError(f"precision={precision!r}: expected one of {', '.join(PRECISIONS)}")
        if threads < 0:
            raise ConfigError(f"threads={threads}: expected 0 (the caller's count) or a positive count")
        world = _world_size()
        rank = int(os.environ.get("RANK", "0"))
        dev = resolve_device(device)
        if precision == "16-mixed" and dev.type == "cpu":
            raise ConfigError("precision='16-mixed' needs a GPU; on CPU use 32 or bf16-mixed")
        if precision == "tf32" and dev.type != "cuda":
            raise ConfigError(f"precision='tf32' needs an NVIDIA GPU (Ampere or newer); on "
                              f"{dev.type} use 32 or bf16-mixed")
        if world > 1 and not torch.distributed.is_initialized():
            backend = "nccl" if dev.type == "cuda" else "gloo"
            torch.distributed.init_process_group(backend=backend)
        scaler = None
        if precision == "16-mixed":
            scaler = torch.amp.GradScaler(dev.type)
        return cls(device=dev, precision=precision, world_size=world, rank=rank, scaler=scaler,
                   threads=threads, channels_last=channels_last)

    @contextlib.contextmanager
    def activate(self) -> Iterator[Runtime]:
        """Apply the run's process-wide settings and restore the caller's on exit:
        - threads: torch.set_num_threads(threads) when threads > 0;
        - CUDA: this runtime's device is the current one; TF32 matmuls and convolutions on
          for precision="tf32", off otherwise (fp32 means fp32);
        - CPU: denormal floats flushed to zero. Adam's second moments of tiny gradients are
          full of them and take a slow microcode path on x86: flushing took Adam's step on
          DQN's 68k-parameter Q-network from 0.8 to 0.2 ms here.

        >>> rt = Runtime.create(device="cpu", threads=1)
        >>> n = torch.get_num_threads()
        >>> with rt.activate():
        ...     inside = torch.get_num_threads()
        >>> inside, torch.get_num_threads() == n
        (1, True)
        """
        with contextlib.ExitStack() as stack:
            if self.threads:
                stack.callback(torch.set_num_threads, torch.get_num_threads())
                torch.set_num_threads(self.threads)
            if self.device.type == "cpu":
                stack.callback(torch.set_flush_denormal, flush_denormal_enabled())
                torch.set_flush_denormal(True)
            if self.device.type == "cuda":
                stack.enter_context(torch.cuda.device(self.device))
                stack.enter_context(_tf32(self.precision == "tf32"))
            yield self

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def shard(self) -> tuple[int, int]:
        """(rank, world_size): which slice of each epoch's batches this process trains on."""
        return self.rank, self.world_size

    def gather(self, obj: Any) -> list[Any]:
        """`obj` of every process, by rank (a list of one when not distributed)."""
        if self.world_size > 1 and torch.distributed.is_initialized():
            out: list[Any] = [None] * self.world_size
            torch.distributed.all_gather_object(out, obj)
            return out
        return [obj]

    def broadcast_flag(self, flag: bool) -> bool:
        """Rank 0's `flag` on every process (a decision taken from a clock must be one)."""
        if self.world_size > 1 and torch.distributed.is_initialized():
            t = torch.tensor([int(flag)], device=self.device if self.device.type == "cuda"
                             else "cpu")
            torch.distributed.broadcast(t, src=0)
            return bool(t.item())
        return flag

    def no_sync(self, model: nn.Module, skip: bool) -> contextlib.AbstractContextManager:
        """With `skip`, DDP does not all-reduce this backward's gradients (they accumulate
        locally until the step's last batch); a no-op when not distributed."""
        if skip and isinstance(model, nn.parallel.DistributedDataParallel):
            return model.no_sync()
        return contextlib.nullcontext()

    def barrier(self) -> None:
        """Wait for every process (no-op when not distributed)."""
        if self.world_size > 1 and torch.distributed.is_initialized():
            torch.distributed.barrier()

    @property
    def amp_dtype(self) -> torch.dtype | None:
        return {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}.get(self.precision)

    def autocast(self) -> contextlib.AbstractContextManager:
        dtype = self.amp_dtype
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=dtype)

    def setup_model(self, model: nn.Module) -> nn.Module:
        """Move to the device (channels-last when asked); wrap in DDP under torchrun."""
        model = self.place(model)
        if self.world_size > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            # a model whose forward may leave parameters out (a captioner's frozen encoder,
            # whose maps are cached) declares it; DDP then skips them instead of waiting
            unused = bool(getattr(model, "ddp_unused_parameters", False))
            model = nn.parallel.DistributedDataParallel(model, device_ids=ids,
                                                        find_unused_parameters=unused)
        return model

    def unwrap(self, model: nn.Module) -> nn.Module:
        return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model

    def place(self, model: nn.Module) -> nn.Module:
        """The model on the device, its 4-D weights channels-last when `channels_last` (NHWC
        convolutions: ~1.4x the images/s of NCHW on this project's 2-core CPU, and the
        layout tensor cores want)."""
        model = model.to(self.device)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        return model

    def to_device(self, batch: Any) -> Any:
        """Move tensors in nested tuples, namedtuples, lists and dicts to the device
        (4-D float tensors, image batches, channels-last when `channels_last`)."""
        if isinstance(batch, torch.Tensor):
            if self.channels_last and batch.ndim == 4 and batch.is_floating_point():
                return batch.to(self.device, non_blocking=True,
                                memory_format=torch.channels_last)
            return batch.to(self.device, non_blocking=True)
        if isinstance(batch, dict):
            return {k: self.to_device(v) for k, v in batch.items()}
        if isinstance(batch, (list, tuple)):
            moved = [self.to_device(v) for v in batch]
            # a namedtuple takes its fields positionally, a plain tuple/list one iterable
            return type(batch)(*moved) if hasattr(batch, "_fields") else type(batch)(moved)
        return batch

    def backward(self, loss: torch.Tensor) -> None:
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
        else:
            loss.backward()

    def optimizer_step(
        self, optimizer: torch.optim.Optimizer, params: Any, grad_clip: float
    ) -> torch.Tensor | None:
        """Unscale, clip and step. Returns the pre-clip gradient norm when clipping."""
        norm = None
        if self.scaler is not None:
            self.scaler.unscale_(optimizer)
        if grad_clip > 0:
            norm = torch.nn.utils.clip_grad_norm_(params, grad_clip)
        if self.scaler is not None:
            self.scaler.step(optimizer)
            self.scaler.update()
        else:
            optimizer.step()
        return norm

    def synchronize(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    @contextlib.contextmanager
    def inference(self) -> Iterator[None]:
        with torch.inference_mode(), self.autocast():
            yield

    def for_inference(self) -> Runtime:
        """The runtime a delivered predictor runs with: the same device in full precision,
        as `load()` and `load_run()` build it, so a run's final figures are the figures of
        the predictor it returns. TF32 (a matmul setting, not a dtype) is kept."""
        if self.precision in ("32", "tf32"):
            return self
        return dataclasses.replace(self, precision="32", scaler=None)


@contextlib.contextmanager
def _tf32(enabled: bool) -> Iterator[None]:
    """TF32 for CUDA matmuls and cuDNN on or off, restored on exit (torch >= 2.9's per-backend
    `fp32_precision`; reading it also works after the legacy `allow_tf32` flags were set)."""
    backends = [torch.backends.cuda.matmul, torch.backends.cudnn.conv, torch.backends.cudnn.rnn]
    if not all(hasattr(b, "fp32_precision") for b in backends):  # older torch: legacy flags
        backends = [torch.backends.cuda.matmul, torch.backends.cudnn]
        saved = [b.allow_tf32 for b in backends]
        for b in backends:
            b.allow_tf32 = enabled
        try:
            yield
        finally:
            for b, value in zip(backends, saved):
                b.allow_tf32 = value
        return
    saved = [b.fp32_precision for b in backends]
    for b in backends:
        b.fp32_precision = "tf32" if enabled else "ieee"
    try:
        yield
    finally:
        for b, value in zip(backends, saved):
            b.fp32_precision = value
