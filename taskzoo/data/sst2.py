"""SST-2 (GLUE): pinned files and a reader.

Sources, in the order the hub tries them after the cache and TASKZOO_MIRROR: the member of
GLUE's official SST-2.zip, then the raw file at the pinned repository commit named in the
shared data README. Each file is pinned by the sha256 of its bytes."""

from __future__ import annotations

from pathlib import Path

from taskzoo import hub

GROUP = "SST-2"
GLUE_ZIP = "https://dl.fbaipublicfiles.com/glue/data/SST-2.zip"
_RAW = (
    "https://raw.githubusercontent.com/eyalbd2/Reproducing-AutoPrompt/"
    "53e9e221b58e5ed882a56c9d8be838b895351165/glue_data/SST-2/"
)

FILES = {
    "train": hub.RemoteFile(
        name="train.tsv",
        sha256="48eac26399f8456935f81dd9e3a745c1430adb6c62e233ccfe22db4a0d15d1d1",
        size=3_806_081,
        # that repository calls the full training file train_full.tsv (its train.tsv has 1,000 rows)
        urls=(hub.ArchiveMember(GLUE_ZIP, "SST-2/train.tsv"), _RAW + "train_full.tsv"),
    ),
    "dev": hub.RemoteFile(
        name="dev.tsv",
        sha256="54a9c12c77e402fc14d6a66a506f24d999f596b0176eb777c972cccc2f9cc4b0",
        size=94_931,
        urls=(hub.ArchiveMember(GLUE_ZIP, "SST-2/dev.tsv"), _RAW + "dev.tsv"),
    ),
}
COUNTS = {"train": 67_349, "dev": 872}


def read_labelled_tsv(path: Path) -> list[tuple[str, int]]:
    """Rows of a GLUE `sentence<TAB>label` file, sentences stripped (GLUE ends each with a space)."""
    rows: list[tuple[str, int]] = []
    with open(path, encoding="utf-8") as fh:
        header = fh.readline().rstrip("\n").split("\t")
        if header != ["sentence", "label"]:
            raise ValueError(f"{path}: expected header 'sentence<TAB>label', got {header}")
        for lineno, line in enumerate(fh, start=2):
            sentence, sep, label = line.rstrip("\n").rpartition("\t")
            if not sep or label not in ("0", "1"):
                raise ValueError(f"{path}:{lineno}: expected '<sentence>\\t<0|1>'")
            rows.append((sentence.strip(), int(label)))
    return rows


def load_sst2(split: str) -> list[tuple[str, int]]:
    """Download (or find in cache/mirror), verify and read one split: 'train' or 'dev'."""
    rows = read_labelled_tsv(hub.fetch(FILES[split], group=GROUP))
    if len(rows) != COUNTS[split]:
        raise ValueError(f"SST-2 {split}: expected {COUNTS[split]} rows, read {len(rows)}")
    return rows
