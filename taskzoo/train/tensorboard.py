"""`logger=tensorboard`: the run's metrics.jsonl, pictures and config as TensorBoard events.

The event files lie in the run directory beside metrics.jsonl, so `tensorboard --logdir runs/`
shows each run folder as one run. Every metrics.jsonl record becomes scalars at its step (its
"split/metric" keys are the tags; step and epoch are the record's place, not figures), the
config and the final metrics become markdown tables, and the PNG pictures the run writes at
its end (training_curves.png, the task's reports) become images at the last step.

TensorBoard is an optional extra, imported only when a run asks for it.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from taskzoo.errors import UsageError
from taskzoo.train.types import Callback, TrainState

# what the tensorboard package's writers name their files (EventFileWriter)
EVENT_FILE_PREFIX = "events.out.tfevents."
EXTRA = 'pip install -e ".[tensorboard]" (or pip install "taskzoo[tensorboard]")'


def summary_writer_class() -> type:
    """torch's SummaryWriter, or a UsageError naming the extra when tensorboard is missing.

    >>> summary_writer_class().__name__   # doctest: +SKIP
    'SummaryWriter'
    """
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as exc:  # torch raises this when the tensorboard package is absent
        raise UsageError(f"logger=tensorboard needs the tensorboard package ({exc}): "
                         f"{EXTRA}; or leave logger at its default, jsonl") from None
    return SummaryWriter


def is_event_file(name: str) -> bool:
    """Whether a file name is a TensorBoard event file's (an --overwrite removes them too).

    >>> is_event_file("events.out.tfevents.1700000000.host.42.0"), is_event_file("metrics.jsonl")
    (True, False)
    """
    return name.startswith(EVENT_FILE_PREFIX)


def event_files(run_dir: Path) -> list[Path]:
    """The TensorBoard event files directly in `run_dir` (regular files only)."""
    if not run_dir.is_dir():
        return []
    return sorted(p for p in run_dir.iterdir()
                  if is_event_file(p.name) and p.is_file() and not p.is_symlink())


def markdown_table(values: Mapping[str, Any], header: tuple[str, str]) -> str:
    """A two-column markdown table, values as JSON (TensorBoard's text tab renders it).

    >>> print(markdown_table({"lr": 0.001, "model": "bilstm"}, ("key", "value")))
    | key | value |
    | --- | --- |
    | lr | 0.001 |
    | model | "bilstm" |
    """
    def cell(x: Any) -> str:
        return str(x).replace("|", "\\|").replace("\n", " ")

    rows = [f"| {header[0]} | {header[1]} |", "| --- | --- |"]
    rows += [f"| {cell(k)} | {cell(json.dumps(v))} |" for k, v in values.items()]
    return "\n".join(rows)


def _figures(record: Mapping[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in record.items()
            if k not in ("step", "epoch") and isinstance(v, (int, float))
            and not isinstance(v, bool)}


class TensorBoardLog(Callback):
    """Writes a run's events beside its metrics.jsonl; a Trainer callback (`on_record`) and a
    context manager whose exit closes the writer, whether the run finished or failed.

    The writer opens on the first record (or at `finish`), once the Trainer has truncated
    metrics.jsonl for a resumed run: earlier event files of this folder are removed and the
    file's records written again, so the events hold exactly what metrics.jsonl holds.

    >>> with TensorBoardLog(Path("runs/demo"), {"lr": 0.001}) as log:   # doctest: +SKIP
    ...     log.on_record(None, {"step": 50, "epoch": 0, "train/loss": 0.69})
    """

    def __init__(self, run_dir: Path, config: Mapping[str, Any]) -> None:
        summary_writer_class()  # the missing extra is named before any training
        self.run_dir = Path(run_dir)
        self.config = dict(config)
        self.writer: Any = None

    def __enter__(self) -> TensorBoardLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def on_record(self, trainer: Any, record: Mapping[str, Any]) -> None:
        """One metrics.jsonl record, already in the file, as scalars at its step."""
        if self.writer is None:
            self._open()  # the file's records, this one included
        else:
            self._scalars(record)

    def on_eval_end(self, trainer: Any, state: TrainState, metrics: dict[str, float]) -> None:
        if self.writer is not None:  # visible while the next steps train
            self.writer.flush()

    def finish(self, pictures: Mapping[str, bytes], metrics: Mapping[str, float],
               step: int) -> None:
        """The run's PNG pictures as images and its final metrics as a table, at `step`."""
        if self.writer is None:
            self._open()
        for name, png in pictures.items():
            self.writer.add_image(f"pictures/{Path(name).stem}", _decode_png(png), step,
                                  dataformats="HWC")
        self.writer.add_text("metrics", markdown_table(metrics, ("metric", "value")), step)
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    def _open(self) -> None:
        from taskzoo.report import read_records

        for old in event_files(self.run_dir):
            old.unlink()
        self.writer = summary_writer_class()(log_dir=str(self.run_dir), flush_secs=30)
        self.writer.add_text("config", markdown_table(self.config, ("key", "value")), 0)
        for record in read_records(self.run_dir / "metrics.jsonl"):
            self._scalars(record)

    def _scalars(self, record: Mapping[str, Any]) -> None:
        step = int(record.get("step", 0))
        for tag, value in _figures(record).items():
            self.writer.add_scalar(tag, value, step)


def _decode_png(png: bytes) -> Any:
    """HWC uint8 pixels (RGB or RGBA) of a PNG, as SummaryWriter.add_image takes them."""
    import numpy as np
    from PIL import Image

    with Image.open(io.BytesIO(png)) as img:
        return np.asarray(img.convert("RGBA" if "A" in img.getbands() else "RGB"))
