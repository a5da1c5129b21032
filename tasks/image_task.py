"""What every image task shares: offline example inputs (the digits) and the weights card's
account of the images (name, pinned files, license)."""

from __future__ import annotations

from typing import Any

from taskzoo.tasks.base import C, Task


class ImageTask(Task[C]):
    """A Task over images; subclasses keep their data bundle in `self._data` with `name` and
    `files`, and name their dataset in `cfg.dataset`."""

    throughput_unit = "images"

    def example_inputs(self, n: int) -> list[Any]:
        from taskzoo.data.images import example_images

        return example_images(n)

    def dataset_card(self) -> dict[str, Any]:
        from taskzoo.data.images import LICENSES

        data = getattr(self, "_data", None)
        return {"name": data.name if data else self.cfg.dataset,
                "files": data.files if data else [],
                "license": LICENSES.get(self.cfg.dataset, "the user's own")}
