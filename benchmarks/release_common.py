"""What the release scripts of third-party weights share: a run directory written for a
model that `taskzoo run` did not train (upstream weights converted into a task's network),
then `taskzoo export` of it, which measures the task's figures again on the exported file.

    >>> weights, card = export_converted(task, data, model, name="fastestdet.coco",
    ...                                  dtype="float32", out="taskzoo/released", notes="...")  # doctest: +SKIP
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from taskzoo.api import config_record
from taskzoo.files import write_json
from taskzoo.weights import WeightCard
from taskzoo.weights.export import export


def export_converted(task: Any, data: Any, model: Any, *, name: str, dtype: str, out: str,
                     notes: str) -> tuple[Path, Path]:
    """Export `model` (the task's network holding converted weights, evaluated on `data`'s
    final splits) as the default released weights `name`: (weights file, card file)."""
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp)
        write_json(run / "config.json", config_record(task.cfg, type(task).name))
        write_json(run / "data.json", task.data_state(data))
        metrics: dict[str, float] = {}
        with torch.inference_mode():
            for split in task.final_splits:  # a task may set its splits from the data
                metrics.update(task.evaluate(model.eval(), data, split))
        write_json(run / "metrics.json", metrics)
        save_file({k: v.contiguous() for k, v in model.state_dict().items()},
                  str(run / "best.safetensors"))
        # served from taskzoo's release like the others: no URL of its own
        return export(run, name=name, dtype=dtype, out=out, default=True, notes=notes, url="")


def write_card(card_path: Path, card: dict[str, Any], weights: Path) -> None:
    """Write the card the script completed (source, license, dataset), refused first if
    `taskzoo.load` would refuse it; print the file's size and the card's figures."""
    WeightCard.from_dict(card, source=str(card_path))
    write_json(card_path, card)
    print(f"{weights} ({weights.stat().st_size:,} bytes)")
    print(json.dumps(card["metrics"], indent=1))
