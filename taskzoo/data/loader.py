"""The supervised BatchSource: seeded, resumable epochs over an indexable dataset."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch

from taskzoo.errors import ConfigError, DataError
from taskzoo.trainer import SourceBase, TrainState


class LoaderSource(SourceBase):
    """Batches of `dataset` in an order fixed by (seed, epoch), so resume is exact.

    With `lengths`, examples of similar length are batched together (shuffle, cut into
    pools of 50 batches, sort each pool by length, shuffle the batches): far less padding
    for RNNs at no cost in randomness that matters.

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
    ) -> None:
        if batch_size < 1:
            raise ConfigError(f"batch_size={batch_size}: expected >= 1")
        self.dataset = dataset
        self.batch_size = batch_size
        self.collate = collate
        self.seed = seed
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.lengths = torch.as_tensor(lengths) if lengths is not None else None
        self.pool = pool
        self.rank, self.world = shard
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
        for idx in self.epoch_batches(state.epoch)[state.batch_in_epoch:]:
            yield self.collate([self.dataset[i] for i in idx])


def eval_batches(
    dataset: Sequence[Any], *, batch_size: int, collate: Callable[[list[Any]], Any],
    lengths: Sequence[int] | None = None,
) -> Iterator[tuple[list[int], Any]]:
    """(indices, batch) in length order for fast evaluation; callers scatter back by index."""
    order = list(range(len(dataset)))
    if lengths is not None:
        order.sort(key=lambda i: lengths[i])
    for i in range(0, len(order), batch_size):
        idx = order[i:i + batch_size]
        yield idx, collate([dataset[j] for j in idx])
