"""Issue 28, cases 6 and 8: hostile files a careless user leaves in their data. A FIFO (or
any special file) in an image folder, a detection label folder or a chat knowledge base is
never opened, since opening a FIFO for reading blocks until a writer comes; text that is
not UTF-8 gets one line naming the file, and a chat session outlives a bad line."""

from __future__ import annotations

import io
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from taskzoo.errors import DataError, InputError

pytestmark = [pytest.mark.timeout(30),
              pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs os.mkfifo")]

LATIN1 = "Le café est ouvert. Où est la gare?".encode("latin-1")
RANDOM = bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8))
FAST = 5.0  # seconds: a FIFO that was opened has been unblocked by then, and the test fails


@contextmanager
def fifo(path: Path) -> Iterator[Path]:
    """A FIFO at `path`. After FAST seconds a writer opens and closes it, so that code which
    opened it (and blocks) reads an empty file instead of hanging the test run; the test then
    fails on its time or its message, not by hanging."""
    os.mkfifo(path)
    done = threading.Event()

    def unblock() -> None:
        if done.wait(FAST):
            return
        while not done.wait(0.1):
            try:  # ENXIO until some reader has it open
                os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
            except OSError:
                pass

    t = threading.Thread(target=unblock, daemon=True)
    t.start()
    start = time.monotonic()
    try:
        yield path
    finally:
        done.set()
        t.join()
    assert time.monotonic() - start < FAST, f"{path} was opened: the reader blocked"


def _png(path: Path, value: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((8, 8, 3), value, np.uint8)).save(path)
    return path


# ---------------------------------------------------------------- case 6: special files


def test_a_fifo_in_an_image_folder_is_skipped_and_listed(tmp_path):
    from taskzoo.data.image_files import load_image_files, load_image_folder, read_image

    for c in ("cat", "dog"):
        for i in range(3):
            _png(tmp_path / c / f"{i}.png", 40 * i)
    with fifo(tmp_path / "cat" / "pipe.png") as pipe:
        splits = load_image_folder(tmp_path, val_fraction=0)
        flat = load_image_files(tmp_path)
        with pytest.raises(DataError, match="FIFO"):
            read_image(pipe)
    for found in (splits["train"], flat):
        assert pipe not in found.paths and len(found.paths) == 6
        assert [(p, r) for p, r in found.skipped] == [
            (str(pipe), "a FIFO (named pipe), not a regular file")]


def test_a_fifo_in_a_detection_label_folder_is_reported_not_opened(tmp_path):
    from taskzoo.data.detection.files import load_detection_data

    for i in range(2):
        _png(tmp_path / "images" / f"{i}.png")
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "0.txt").write_text("0 0.5 0.5 0.5 0.5\n")
    (tmp_path / "classes.txt").write_text("thing\n")
    with fifo(tmp_path / "labels" / "1.txt"), pytest.raises(DataError) as e:
        load_detection_data(tmp_path)
    assert "1.txt: the label file is a FIFO (named pipe), not a regular file" in str(e.value)
    os.remove(tmp_path / "labels" / "1.txt")
    # a FIFO where the dataset's own files are read: refused in one line too
    with fifo(tmp_path / "data.yaml"), pytest.raises(DataError, match="data.yaml is a FIFO"):
        load_detection_data(tmp_path)


def test_a_fifo_in_a_chat_folder_is_skipped_and_listed_and_refused_as_the_kb(tmp_path):
    from taskzoo.apps.chat import read_kb, repl

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("We open at nine. We close at five. Parking is free.")
    skipped: list[tuple[str, str]] = []
    with fifo(docs / "b.txt") as pipe:
        entries = read_kb(docs, skipped)
    assert [e.source for e in entries] == ["a.txt:1"]
    assert skipped == [(str(pipe), "a FIFO (named pipe), not a regular file")]

    class Bot:  # repl lists what was skipped, as the image readers do
        pass

    bot = Bot()
    bot.entries, bot.skipped = entries, skipped  # type: ignore[attr-defined]
    out = io.StringIO()
    repl(bot, stdin=io.StringIO(""), stdout=out)  # type: ignore[arg-type]
    assert f"skipped {pipe}: a FIFO (named pipe), not a regular file" in out.getvalue()
    with fifo(tmp_path / "faq.csv") as kb, pytest.raises(InputError) as e:
        read_kb(kb)
    assert str(e.value) == (f"knowledge base {kb} is a FIFO (named pipe), not a regular file: "
                            f"expected a UTF-8 text file")


# ---------------------------------------------------------------- case 8: not UTF-8


@pytest.mark.parametrize("payload", [LATIN1, RANDOM], ids=["latin1", "random"])
def test_qa_and_summarization_refuse_a_file_that_is_not_utf8_in_one_line(tmp_path, payload):
    from taskzoo.tasks.qa.predictor import QAPredictor
    from taskzoo.tasks.summarization.predictor import SummaryPredictor

    bad = tmp_path / "doc.txt"
    bad.write_bytes(payload)
    # parse_cli reads the arguments only: no model is needed to call it
    for cls, args, what in ((QAPredictor, ["who?", f"@{bad}"], "context file"),
                            (SummaryPredictor, [f"@{bad}"], "document file")):
        with pytest.raises(InputError) as e:
            cls.__new__(cls).parse_cli(args)
        msg = str(e.value)
        assert msg.startswith(f"{what} {bad} is not UTF-8 text (byte 0x") and "\n" not in msg
        assert "save it as UTF-8" in msg
    good = tmp_path / "good.txt"
    good.write_bytes("\ufeffLe café.".encode())  # a byte-order mark is not text
    assert SummaryPredictor.__new__(SummaryPredictor).parse_cli([f"@{good}"]) == ["Le café."]


def test_a_chat_csv_that_is_not_utf8_is_refused_in_one_line(tmp_path):
    from taskzoo.apps.chat import read_kb

    kb = tmp_path / "faq.csv"
    kb.write_bytes(b"question,answer\nopen?,nine\n" + "caf\xe9?,yes\n".encode("latin-1"))
    with pytest.raises(InputError) as e:
        read_kb(kb)
    assert str(e.value) == (f"knowledge base {kb} is not UTF-8 text (byte 0xe9 at line 3, "
                            f"column 4): save it as UTF-8 (e.g. iconv -f latin1 -t utf-8)")


def test_a_line_typed_into_chat_that_is_not_utf8_does_not_end_the_session():
    from taskzoo.apps.chat import Reply, repl

    asked = []

    class Bot:
        entries = ["one"]

        def __call__(self, question: str) -> Reply:
            # the real encoder's tokenizer raises TypeError on the surrogates Python reads
            # undecodable bytes as; this one raises too
            question.encode("utf-8")
            asked.append(question)
            return Reply("an answer", 0.9, "faq.csv:1")

    class StrictStdin:  # a strict-decoding terminal: the bad line raises, the next is fine
        lines = ["caf\udce9?\n", None, "opening hours?\n", ""]

        def readline(self) -> str:
            line = self.lines.pop(0)
            if line is None:
                raise UnicodeDecodeError("utf-8", b"\xe9", 0, 1, "invalid start byte")
            return line

    out = io.StringIO()
    assert repl(Bot(), stdin=StrictStdin(), stdout=out) == 0  # type: ignore[arg-type]
    assert asked == ["opening hours?"]
    assert out.getvalue().count("that line is not valid UTF-8 text") == 2
    assert "bot> an answer" in out.getvalue()


def test_a_class_folder_whose_name_is_not_utf8_is_refused_before_training(tmp_path):
    from taskzoo.data.image_files import load_image_folder

    bad = os.fsdecode(b"caf\xe9")  # the name as Python reads it: 'caf\udce9'
    for c in (bad, "dog"):
        for i in range(3):
            _png(tmp_path / c / f"{i}.png", 40 * i)
    with pytest.raises(DataError) as e:
        load_image_folder(tmp_path)
    msg = str(e.value)
    assert msg.startswith(f"{tmp_path}: the class folder 'caf\ufffd' has a name that is not "
                          f"valid UTF-8")
    assert "rename it" in msg
    msg.encode("utf-8")  # the message itself prints on any terminal


def test_a_chat_csv_field_over_the_csv_limit_is_refused_in_one_line(tmp_path):
    import csv

    from taskzoo.apps.chat import read_kb

    kb = tmp_path / "faq.csv"
    kb.write_text("question,answer\nopen?,nine\nlong?," + "x" * 200_000 + "\n")
    with pytest.raises(InputError) as e:
        read_kb(kb)
    assert str(e.value).startswith(f"knowledge base {kb} line 3: field larger than field limit")
    assert "folder of .txt files" in str(e.value)
    assert csv.field_size_limit() == 131072  # the process-wide limit is left alone


def test_a_folder_named_like_a_text_file_in_a_chat_folder_is_read_through(tmp_path):
    from taskzoo.apps.chat import read_kb

    docs = tmp_path / "docs"
    (docs / "x.txt").mkdir(parents=True)
    (docs / "x.txt" / "inner.md").write_text("Inside a folder named x.txt.")
    (docs / "a.txt").write_text("We open at nine.")
    entries = read_kb(docs)
    assert sorted(e.source for e in entries) == ["a.txt:1", "x.txt/inner.md:1"]


def test_a_big_but_allowed_image_prints_no_bomb_warning_and_a_bomb_is_one_line(tmp_path,
                                                                               monkeypatch):
    # Issue 28, case 17: Pillow's multi-line DecompressionBombWarning reached the terminal
    # for a 12000x12000 photo that was then read fine. Pillow warns above MAX_IMAGE_PIXELS and
    # refuses above twice that: a lowered limit makes a 40x30 image "big but allowed".
    import warnings

    from taskzoo.data.image_files import read_image

    Image.fromarray(np.zeros((30, 40, 3), np.uint8)).save(path := tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 40 * 30 - 100)
    before = list(warnings.filters)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        assert read_image(path).size == (40, 30)
    assert not [w for w in seen if issubclass(w.category, Image.DecompressionBombWarning)]
    assert list(warnings.filters) == before  # scoped: the caller's filters are unchanged
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 40 * 30 // 3)  # now over twice the limit
    with pytest.raises(DataError) as err:
        read_image(path)
    assert "big.png" in str(err.value) and "\n" not in str(err.value)


def test_fifos_in_the_cache_and_a_fifo_manifest_never_block(tmp_path, monkeypatch):
    # Issue 28, case 6, in the hub: `taskzoo verify` read every verification record and hung
    # on a FIFO among them; a verification record, a folder's completion marker or a manifest
    # that is a FIFO blocked the same way. They are skipped (never deleted: taskzoo did not
    # write them) or refused in one line.
    from taskzoo import hub

    home = tmp_path / "home"
    (home / "verified").mkdir(parents=True)
    (home / "0123456789abcdef").mkdir()
    monkeypatch.setenv("TASKZOO_HOME", str(home))
    (good := tmp_path / "w.bin").write_bytes(b"weights")
    sha = hub.sha256_file(good)
    with fifo(home / "verified" / "stray.json"), fifo(home / "0123456789abcdef" / "x.bin"):
        assert hub.verify_cache() == []
        assert hub.verified_file(good, sha, 7)  # records are still written and read
    assert (home / "verified" / "stray.json").exists()  # left alone
    assert hub.verified_file(good, sha, 7)
    with fifo(tmp_path / "m.txt") as path, pytest.raises(DataError) as err:
        hub.read_manifest(path)
    assert "FIFO" in str(err.value) and "m.txt" in str(err.value)
