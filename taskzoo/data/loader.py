"""The supervised BatchSource: seeded, resumable epochs over an indexable dataset.

The engine fixes the order of every epoch itself, as a pure function of (seed, epoch): that
is what makes resume exact. A `torch.utils.data.DataLoader` then does the loading, taking
that order as its batch sampler: worker processes, pinned memory on CUDA, prefetching.
Random per-sample work (augmentation, noise) draws from a generator seeded by
(seed, epoch, sample index), so the pixels a sample gets do not depend on the number of
workers, on which worker loads it, or on whether the run was resumed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch.utils.data import DataLoader

from taskzoo.errors import ConfigError, DataError
from taskzoo.train.types import SourceBase, TrainState


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """The seed of one sample's random draws in one epoch (a 63-bit mix of the three).

    >>> sample_seed(0, 1, 2) == sample_seed(0, 1, 2) != sample_seed(0, 2, 2)
    True
    """
    x = (seed * 0x9E3779B97F4A7C15 + epoch * 0xBF58476D1CE4E5B9 + index * 0x94D049BB133111EB)
    x &= 0xFFFFFFFFFFFFFFFF
    x ^= x >> 31  # splitmix64's finaliser: nearby inputs give unrelated seeds
    x = (x * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    return (x ^ (x >> 29)) >> 1


class SeededSamples(torch.utils.data.Dataset):
    """`dataset[i]`, passed through `transform` under the torch RNG seeded for
    (seed, epoch, i). Keys are (epoch, i) pairs; transforms.v2 draw from torch's RNG, which
    is forked, so neither the caller's stream nor other samples' draws are touched."""

    def __init__(self, dataset: Sequence[Any], transform: Callable[[Any], Any] | None,
                 seed: int) -> None:
        self.dataset, self.transform, self.seed = dataset, transform, seed

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]) -> Any:
        return self.__getitems__([key])[0]

    def __getitems__(self, keys: list[tuple[int, int]]) -> list[Any]:
        """One batch (the DataLoader calls this): the caller's RNG state is saved and restored
        once per batch, not per sample."""
        items = [self.dataset[i] for _, i in keys]
        if self.transform is None:
            return items
        cpu = torch.default_generator  # transforms.v2 draw from it; seeding only it is cheap
        with torch.random.fork_rng(devices=[]):
            out = []
            for (epoch, i), item in zip(keys, items):
                cpu.manual_seed(sample_seed(self.seed, epoch, i))
                out.append(self.transform(item))
            return out


def data_loader(samples: SeededSamples, batches: Sequence[Sequence[tuple[int, int]]], *,
                collate: Callable[[list[Any]], Any], workers: int = 0,
                pin_memory: bool = False) -> Iterator[Any]:
    """Collated batches of `samples` for the given keys, loaded by `workers` processes."""
    if not batches:
        return iter(())
    # A private generator: making an iterator draws a base seed, and drawing it from torch's
    # global RNG would shift the dropout masks of a resumed run against an unbroken one.
    loader = DataLoader(samples, batch_sampler=batches, collate_fn=collate, num_workers=workers,
                        pin_memory=pin_memory, prefetch_factor=2 if workers else None,
                        generator=torch.Generator().manual_seed(0))
    return iter(loader)


class _EpochKeys:
    """The batch sampler of a persistent loader: the keys of the epoch being loaded, set
    before each pass (the DataLoader reads its sampler in this process)."""

    def __init__(self) -> None:
        self.keys: list[list[tuple[int, int]]] = []

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        return iter(self.keys)

    def __len__(self) -> int:
        return len(self.keys)


class LoaderSource(SourceBase):
    """Batches of `dataset` in an order fixed by (seed, epoch), so resume is exact.

    With `lengths`, examples of similar length are batched together (shuffle, cut into
    pools of 50 batches, sort each pool by length, shuffle the batches): far less padding
    for RNNs at no cost in randomness that matters. `transform` is applied to each example
    with its (seed, epoch, index) generator; `workers` > 0 loads in that many processes,
    started once and kept for every epoch until `close()` (starting them again each epoch
    forks the whole training process: its pages are then copied on the next write, which
    cost Lite0 fine-tuning a third of its time).

    >>> src = LoaderSource(list(range(10)), batch_size=4, collate=list, seed=0)
    >>> src.steps_per_epoch
    3
    """

    def __init__(
        self,
        dataset: Sequence[Any],
        *,
        batch_size: int,
        collate: Callable[[list[Any]], Any],
        seed: int = 0,
        shuffle: bool = True,
        drop_last: bool = False,
        lengths: Sequence[int] | None = None,
        pool: int = 50,
        shard: tuple[int, int] = (0, 1),
        transform: Callable[[Any], Any] | None = None,
        workers: int = 0,
    ) -> None:
        if batch_size < 1:
            raise ConfigError(f"batch_size={batch_size}: expected >= 1")
        if workers < 0:
            raise ConfigError(f"workers={workers}: expected >= 0")
        self.dataset = dataset
        self.batch_size = batch_size
        self.collate = collate
        self.seed = seed
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.lengths = torch.as_tensor(lengths) if lengths is not None else None
        self.pool = pool
        self.rank, self.world = shard
        self.samples = SeededSamples(dataset, transform, seed)
        self.workers = workers
        self.pin_memory = False
        self._loader: DataLoader | None = None  # with workers: made at the first epoch
        self._keys = _EpochKeys()
        n = len(dataset)
        if n == 0:
            raise DataError("the training split is empty: there is nothing to train on")
        total = n // batch_size if drop_last else -(-n // batch_size)
        # Under DDP every process takes every world-th batch; all take the same count so
        # gradient all-reduces always pair up.
        self.steps_per_epoch = total // self.world if self.world > 1 else total
        if self.steps_per_epoch < 1:
            raise DataError(
                f"the training split makes {total} batch(es) ({n} examples, batch_size "
                f"{batch_size}{', drop_last' if drop_last else ''}) but {self.world} processes "
                f"each need at least one per epoch: lower batch_size to {max(1, n // self.world)} "
                "or below, or start fewer processes")

    def setup(self, model: torch.nn.Module, runtime: Any) -> None:
        # page-locked host memory makes the copy to the GPU asynchronous
        self.pin_memory = runtime.device.type == "cuda"

    def epoch_batches(self, epoch: int) -> list[list[int]]:
        """The index lists of one epoch; a pure function of (seed, epoch)."""
        n = len(self.dataset)
        if not self.shuffle:
            order = torch.arange(n)
        else:
            gen = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
            order = torch.randperm(n, generator=gen)
        bs = self.batch_size
        if self.lengths is not None and self.shuffle:
            chunk = bs * self.pool
            pieces = []
            for start in range(0, n, chunk):
                part = order[start:start + chunk]
                # stable sort keeps the shuffled order among equal lengths
                pieces.append(part[torch.argsort(self.lengths[part], stable=True)])
            order = torch.cat(pieces)
        batches = [order[i:i + bs].tolist() for i in range(0, n, bs)]
        if self.drop_last and batches and len(batches[-1]) < bs:
            batches.pop()
        if self.lengths is not None and self.shuffle:
            perm = torch.randperm(len(batches), generator=gen).tolist()
            batches = [batches[i] for i in perm]
        if self.world > 1:
            batches = batches[self.rank::self.world][: len(batches) // self.world]
        return batches

    def batches(self, state: TrainState) -> Iterator[Any]:
        epoch = state.epoch
        keys = [[(epoch, i) for i in idx]
                for idx in self.epoch_batches(epoch)[state.batch_in_epoch:]]
        if not self.workers:
            yield from data_loader(self.samples, keys, collate=self.collate,
                                   pin_memory=self.pin_memory)
            return
        if not keys:
            return
        if self._loader is None:
            self._loader = DataLoader(
                self.samples, batch_sampler=self._keys, collate_fn=self.collate,
                num_workers=self.workers, pin_memory=self.pin_memory, prefetch_factor=2,
                persistent_workers=True, generator=torch.Generator().manual_seed(0))
        self._keys.keys = keys
        yield from self._loader

    def close(self) -> None:
        """Stop the loader processes (the Trainer calls this when training ends)."""
        self._loader = None  # its iterator shuts the workers down when dropped


def eval_batches(
    dataset: Sequence[Any], *, batch_size: int, collate: Callable[[list[Any]], Any],
    lengths: Sequence[int] | None = None, transform: Callable[[Any], Any] | None = None,
    workers: int = 0,
) -> Iterator[tuple[list[int], Any]]:
    """(indices, batch) in length order for fast evaluation; callers scatter back by index.
    `transform` must be deterministic here (evaluation draws nothing)."""
    order = list(range(len(dataset)))
    if lengths is not None:
        order.sort(key=lambda i: lengths[i])
    chunks = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    if transform is None and workers == 0:  # text: nothing to load, skip the DataLoader
        for idx in chunks:
            yield idx, collate([dataset[j] for j in idx])
        return
    samples = SeededSamples(dataset, transform, 0)
    loaded = data_loader(samples, [[(0, j) for j in idx] for idx in chunks], collate=collate,
                         workers=workers)
    yield from zip(chunks, loaded)
