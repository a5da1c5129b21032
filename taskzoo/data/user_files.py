"""Opening a user's own file safely: only a regular file is ever opened (opening a FIFO for
reading waits for a writer forever), and text is read as UTF-8 with a one-line error that
names the file, the bad byte and its line.

    >>> from taskzoo.data.user_files import read_utf8
    >>> read_utf8("notes.txt", "context file")  # doctest: +SKIP
    'The text ...'
"""

from __future__ import annotations

import os
from pathlib import Path

from taskzoo.errors import InputError, TaskzooError
from taskzoo.files import NotRegularFile, file_kind, open_regular

__all__ = ["NotRegularFile", "UnreadableText", "file_kind", "open_regular", "utf8_text",
           "read_utf8", "utf8_argument"]

class UnreadableText(Exception):
    """A file that cannot be read as UTF-8 text; the message is the reason alone."""


def _decode_error(data: bytes, e: UnicodeDecodeError) -> str:
    line = data.count(b"\n", 0, e.start) + 1
    column = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
    return f"is not UTF-8 text (byte 0x{data[e.start]:02x} at line {line}, column {column})"


def utf8_text(path: str | os.PathLike[str], *, errors: str = "strict") -> str:
    """The file's text, decoded as UTF-8 (a leading byte-order mark dropped).

    Raises FileNotFoundError when there is no such file, else UnreadableText with the reason
    ("is a FIFO (named pipe), not a regular file", "is not UTF-8 text (byte 0xe9 at line 3,
    column 4)", ...); `errors="replace"` reads undecodable bytes as U+FFFD instead."""
    try:
        with open_regular(path) as fh:
            data = fh.read()
    except FileNotFoundError:
        raise
    except NotRegularFile as e:
        raise UnreadableText(f"is {e}") from None
    except OSError as e:
        raise UnreadableText(f"cannot be read ({e.strerror or e})") from None
    try:
        return data.decode("utf-8-sig", errors=errors)
    except UnicodeDecodeError as e:
        raise UnreadableText(_decode_error(data, e)) from None


def read_utf8(path: str | os.PathLike[str], what: str,
              error: type[TaskzooError] = InputError) -> str:
    """`utf8_text`, every failure raised as `error` with one line naming `what` and the path.

    Text that is not UTF-8 is refused rather than guessed: Latin-1 decodes any bytes, so a
    guess would turn a binary or Windows-1252 file into silently wrong text."""
    p = Path(path)
    try:
        return utf8_text(p)
    except FileNotFoundError:
        raise error(f"{what} {p} does not exist") from None
    except UnreadableText as e:
        hint = (": save it as UTF-8 (e.g. iconv -f latin1 -t utf-8)" if "UTF-8" in str(e)
                else ": expected a UTF-8 text file")
        raise error(f"{what} {p} {e}{hint}") from None


def utf8_argument(text: str, what: str) -> str:
    """`text`, a command-line argument, or a one-line InputError when it holds bytes that are
    not UTF-8: Python keeps them as lone surrogates, which a tokenizer refuses with a
    TypeError and a terminal cannot print."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        char = ord(text[e.start])
        byte = f"byte 0x{char - 0xDC00:02x}" if 0xDC80 <= char <= 0xDCFF else f"U+{char:04X}"
        raise InputError(f"{what} is not UTF-8 text ({byte} at character {e.start + 1}): "
                         "type it or save it as UTF-8") from None
    return text
