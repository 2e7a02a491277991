"""Exceptions raised by :mod:`store`.

Every class also inherits the built-in that fits its category, so callers can catch either
(``except store.errors.UnknownActorError`` or ``except ValueError``). Messages say what was
received, what was expected, and what to do about it.
"""

from __future__ import annotations

__all__ = [
    "StoreError",
    "SchemaError",
    "MissingActorError",
    "UnknownActorError",
    "ShapeError",
    "DTypeError",
    "NonFiniteError",
    "MissingColumnError",
    "UnknownColumnError",
    "ReadOnlyError",
    "ClosedStoreError",
    "StoreNotFoundError",
    "StoreExistsError",
    "NotAStoreError",
    "FormatVersionError",
    "TruncatedStoreError",
    "StoreLockedError",
    "DamagedStoreError",
    "ChecksumError",
    "StoreWriteError",
    "StoreReplacedError",
    "RowsDeletedError",
    "SamplerError",
    "EmptyWindowError",
    "ArchiveExtraError",
]


class StoreError(Exception):
    """Base class of every error raised by replaystore's store."""


class SchemaError(StoreError, ValueError):
    """A schema declaration is invalid (bad name, dtype or shape)."""


class MissingActorError(StoreError, TypeError):
    """A row was appended without an actor tag."""


class UnknownActorError(StoreError, ValueError):
    """An actor name or code is not in the store's vocabulary."""


class ShapeError(StoreError, ValueError):
    """A value's shape does not match its column."""


class DTypeError(StoreError, TypeError):
    """A value's dtype cannot be cast safely to its column's dtype."""


class NonFiniteError(StoreError, ValueError):
    """A float value is NaN or infinite and the store does not allow it."""


class MissingColumnError(StoreError, KeyError):
    """A required column was not given."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else ""


class UnknownColumnError(StoreError, KeyError):
    """A column that the schema does not declare was given."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class ReadOnlyError(StoreError, PermissionError):
    """A write was attempted on a store opened read-only."""


class ClosedStoreError(StoreError, ValueError):
    """An operation was attempted on a closed store (like I/O on a closed file)."""


class StoreNotFoundError(StoreError, FileNotFoundError):
    """The path does not exist."""


class StoreExistsError(StoreError, FileExistsError):
    """``create`` found the name taken: a store exists there, or another process is creating one."""


class NotAStoreError(StoreError, ValueError):
    """The file is not HDF5, or is HDF5 but not a replaystore store."""


class FormatVersionError(StoreError, ValueError):
    """The store was written in a format version this reader does not know."""


class TruncatedStoreError(StoreError, OSError):
    """The file is shorter than its commit record says: it was truncated or copied partly."""


class StoreLockedError(StoreError, BlockingIOError):
    """Another live process is writing this store."""


class DamagedStoreError(StoreError, ValueError):
    """A commit record, manifest or segment is damaged, foreign or contradicts the others."""


class ChecksumError(DamagedStoreError):
    """Committed bytes no longer match the checksum recorded when they were committed."""


class StoreWriteError(StoreError, OSError):
    """Writing rows, a segment or the commit record failed (disk full, file size limit, I/O error).

    ``errno`` is the operating system's (28 ENOSPC, 27 EFBIG...). Rows accepted before the failure
    stay staged: free space and call ``commit()`` again, or ``close()``.
    """


class StoreReplacedError(StoreWriteError):
    """A writer's store was removed, or replaced by another store at its path, while it was open:
    it refuses every write, so the store now at that path is never touched (``errno`` is ESTALE)."""


class RowsDeletedError(StoreError, IndexError):
    """Rows older than the store's retention were deleted (``ReplayStore.create(..., retain=N)``)."""


class SamplerError(StoreError, ValueError):
    """Invalid sampler configuration or input."""


class EmptyWindowError(SamplerError):
    """There is nothing to sample from (no committed rows, or none of a requested actor)."""


# A run of shards (store/run/_run.py): kept apart from the list above so each part's errors stay together.
__all__ += ["RunError", "ShardMismatchError"]


class RunError(StoreError, ValueError):
    """A run folder is missing, damaged, of an unknown format version, or used the wrong way."""


class ShardMismatchError(RunError):
    """A shard's schema, actor vocabulary or window differs from its run's record."""


class ArchiveExtraError(StoreError, ImportError):
    """A Blosc codec (``compact --codec blosc-lz4``, or reading such a segment) without the
    ``[archive]`` extra; says it in the one line ``replaystore.common.extras`` uses."""

    def __init__(self, feature: str, missing: str) -> None:
        self.feature, self.extra, self.missing = feature, "archive", missing
        super().__init__(f"{feature} needs the [archive] extra ({missing} is not installed): "
                         "pip install 'replaystore[archive]'", name=missing)

    def __reduce__(self):  # the two fields, so the error survives a trip through Ray or Dask
        return type(self), (self.feature, self.missing)
