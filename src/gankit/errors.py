"""gankit's own error types. The CLI turns these (and only these) into one line and exit code 2;
anything else is a bug and keeps its traceback."""

from __future__ import annotations

import contextlib


class GankitError(Exception):
    """Bad input, named in one line: an option, a file, a dataset or a run directory."""


class ConfigError(GankitError, ValueError):
    """A configuration value is invalid; the message names the key."""


class DataError(GankitError, ValueError):
    """A dataset cannot be used as asked (unknown name or split, too small, wrong kind for a model)."""


class UsageError(GankitError, ValueError):
    """A command was asked for something it cannot do with this run (e.g. an image figure of a toy run)."""


class NonFiniteError(GankitError, RuntimeError):
    """A loss or parameter became NaN/inf; the message names the step and the quantity (exit code 1)."""


class CheckpointError(GankitError, RuntimeError):
    """A checkpoint is missing, unreadable, or not one this gankit writes; the message names the file."""


class DiskError(GankitError, OSError):
    """A file could not be written or read for a reason of the file system (full, read-only, missing)."""


@contextlib.contextmanager
def on_disk(doing: str, path):
    """Turn an OSError inside into a one-line DiskError naming what was being done, the path and the cause."""
    try:
        yield
    except GankitError:
        raise
    except OSError as e:
        raise DiskError(f"cannot {doing} {path}: {e.strerror or e}") from None


def first_line(e: BaseException, limit: int = 200) -> str:
    """An exception's message cut to its first line (or its type's name when it has none), for one-line errors."""
    return (str(e).strip().splitlines() or [type(e).__name__])[0][:limit]
