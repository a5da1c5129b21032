"""Typed errors. Every error a user can cause derives from TaskzooError and carries a
message that says what was wrong, what is valid and, where one exists, the closest match.
The CLI prints the message (no traceback) and exits 2 for UsageError, 1 otherwise."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class TaskzooError(Exception):
    """Base class of every error taskzoo raises on purpose."""


class UsageError(TaskzooError):
    """The caller asked for something invalid (a name, a config value, an input)."""


class UnknownNameError(UsageError, LookupError):
    """A registry lookup failed: names the closest valid name and lists the valid ones."""


class ConfigError(UsageError, ValueError):
    """A config override is malformed, names an unknown key or has the wrong type."""


class InputError(UsageError, ValueError):
    """A predictor received input it cannot handle (wrong type, empty, bad encoding)."""


class DataError(UsageError):
    """The data cannot be trained on or read: an empty split, fewer batches than processes,
    an unreadable file (names the path and what to do)."""


class DivergenceError(UsageError):
    """Training stopped because the loss became NaN or infinite (names the step; a lower
    learning rate usually helps). A UsageError: the recipe chosen caused it."""


class DownloadError(TaskzooError, OSError):
    """A file could not be obtained from any source."""


class IntegrityError(DownloadError):
    """A downloaded file's size or sha256 does not match its pin; the file was discarded."""


class OfflineError(DownloadError):
    """TASKZOO_OFFLINE=1 and the file is neither cached nor in a local mirror."""


class CheckpointError(TaskzooError):
    """A checkpoint or run directory is missing, incomplete or incompatible."""


class RunFileError(CheckpointError, UsageError):
    """A run directory's or weights card's file is missing, unreadable or not what taskzoo
    wrote (not JSON, a missing key, a damaged checkpoint): the message names the file, what
    is wrong and what to do. A UsageError too: the CLI exits 2, as for any bad input."""


class InitWarning(UserWarning):
    """`init=` weights were loaded only in part: tensors of another shape (a head for another
    number of classes) kept their fresh initialisation. The message lists them."""


def closest(name: str, valid: Iterable[str]) -> str | None:
    """The valid name most similar to `name`, or None when nothing is close.

    >>> closest("sentimnet", ["sentiment", "pos"])
    'sentiment'
    """
    matches = difflib.get_close_matches(name, list(valid), n=1, cutoff=0.6)
    return matches[0] if matches else None


def did_you_mean(name: str, valid: Iterable[str]) -> str:
    """" Did you mean 'x'?" or "" (for appending to an error message)."""
    match = closest(name, valid)
    return f" Did you mean '{match}'?" if match else ""
