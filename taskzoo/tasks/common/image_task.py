"""What every image task shares: loader processes, offline example inputs (the digits) and
the weights card's account of the images (name, pinned files, license)."""

from __future__ import annotations

import os
from typing import Any, ClassVar

from taskzoo.tasks.base import C, DataBundle, Task


class ImageTask(Task[C]):
    """A Task over images; subclasses keep their data bundle in `self._data` with `name` and
    `files`, and name their dataset in `cfg.dataset`.

    A run evaluates the splits its data has: ORL, coco128 and a folder without val have no
    dev split (then nothing is evaluated during training and nothing is monitored), and not
    every set has a test split. `eval_splits`, `final_splits` and `monitor` read them from
    the bundle build_data made; before it is made (a finished run's figures read back by
    `taskzoo export --no-evaluate`), they are those of a run with every split."""

    throughput_unit = "images"
    dev_metric: ClassVar[str] = ""  # the dev metric that picks the best checkpoint
    _data: Any = None  # the bundle build_data made; None until then

    def has_split(self, split: str) -> bool:
        """Whether this run's data has `split` (true before the data is built)."""
        return self._data is None or split in self._data.splits

    @property
    def eval_splits(self) -> tuple[str, ...]:  # type: ignore[override]
        return ("dev",) if self.has_split("dev") else ()

    @property
    def final_splits(self) -> tuple[str, ...]:  # type: ignore[override]
        return tuple(k for k in ("dev", "test") if self.has_split(k))

    @property
    def monitor(self) -> str:  # type: ignore[override]
        return self.monitor_of(self._data) if self.has_split("dev") else ""

    def monitor_of(self, data: DataBundle | None) -> str:
        """The dev metric a run on `data` monitors (None: not built yet)."""
        return self.dev_metric

    def in_memory(self, data: Any) -> bool:
        """Whether the training images are decoded arrays rather than files."""
        return getattr(data.train.images, "arrays", None) is not None

    def _workers(self, data: Any, *, training: bool = True) -> int:
        """Loader processes (`cfg.workers`, or -1 for these). In memory, one worker prepares
        the next batch (augmentation, noise) while the model trains (Fashion-MNIST on 2
        cores: 911 images/s against 794 without); files want more for decoding. Evaluation
        of in-memory images has nothing to hand off."""
        if self.cfg.workers >= 0:
            return self.cfg.workers
        if self.in_memory(data):
            return 1 if training else 0
        return min(4, max(2, (os.cpu_count() or 2) - 1))

    def example_inputs(self, n: int) -> list[Any]:
        from taskzoo.data.images import example_images

        return example_images(n)

    def dataset_card(self) -> dict[str, Any]:
        from taskzoo.data.images import LICENSES

        data = self._data
        return {"name": data.name if data else self.cfg.dataset,
                "files": data.files if data else [],
                "license": LICENSES.get(self.cfg.dataset, "the user's own")}
