"""What every image task shares: loader processes, offline example inputs (the digits) and
the weights card's account of the images (name, pinned files, license)."""

from __future__ import annotations

import os
from typing import Any

from taskzoo.tasks.base import C, Task


class ImageTask(Task[C]):
    """A Task over images; subclasses keep their data bundle in `self._data` with `name` and
    `files`, and name their dataset in `cfg.dataset`."""

    throughput_unit = "images"

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

        data = getattr(self, "_data", None)
        return {"name": data.name if data else self.cfg.dataset,
                "files": data.files if data else [],
                "license": LICENSES.get(self.cfg.dataset, "the user's own")}
