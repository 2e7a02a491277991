"""Prioritized-replay priorities kept beside a store in ``<store>.priorities``, not in its HDF5 file.

The store's HDF5 metadata is written once (issue 9), so priorities, which change at every
training step, live in a file of their own: raw bytes at fixed offsets, written with ``pwrite``.

Layout (little-endian)::

    0      header: magic, version, window, store uuid, crc32 of those   (written once)
    4096   slot 0: seq, rows, count, max_priority, crc32 | float32[window] by leaf (row % window)
    4096 + slot_bytes   slot 1: the same

A save writes the slot the last save did not use, data first and its header (whose crc32
covers header and data) last, so a kill -9 at any instruction leaves the other slot intact;
loading takes the valid slot with the larger ``seq``. A file that is damaged, made for another
store (uuid) or another window gives a ``RuntimeWarning`` and no priorities (they restart at
the maximum), never an error or wrong values. The one process that saves holds an exclusive
``flock`` on the file: a second saver on the same store is refused.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
import struct
import warnings
import zlib
from dataclasses import dataclass

import numpy as np

from ..files._fileio import layer
from ..errors import SamplerError

MAGIC = b"RSPRIO\x00\x00"
VERSION = 1
_HEAD = struct.Struct("<8sIQ48s")  # magic, version, window, uuid (utf-8, zero padded)
_SLOT = struct.Struct("<QQQd")  # seq, rows, count, max_priority
_CRC = struct.Struct("<I")
_PAGE = 4096
_SLOT_DATA = 64  # a slot's data starts this far into the slot
_READ_TRIES = 3
MIN_PRIORITY = float(np.finfo(np.float32).tiny)  # priorities are saved as float32: smaller ones would be 0
MAX_PRIORITY = float(np.finfo(np.float32).max)  # priorities are saved as float32  # a reader racing two saves in a row retries before calling the file damaged


@dataclass
class Saved:
    """Raw priorities by leaf (``row % window``) for rows ``[max(0, rows - window), rows)``."""

    raw: np.ndarray
    rows: int
    max_priority: float
    seq: int


def sidecar_path(store_path) -> str:
    return os.fspath(store_path) + ".priorities"


def _slot_bytes(window: int) -> int:
    return -(-(_SLOT_DATA + 4 * window) // _PAGE) * _PAGE


def _slot_offset(window: int, slot: int) -> int:
    return _PAGE + slot * _slot_bytes(window)


def _header(window: int, uuid: str) -> bytes:
    head = _HEAD.pack(MAGIC, VERSION, window, uuid.encode())
    return head + _CRC.pack(zlib.crc32(head))


class PriorityFile:
    """The priority file of one store, opened to load (``writable=False``) or to load and save.

    ``load()`` returns the newest valid ``Saved`` or None (no file, nothing saved yet, or a
    damaged or foreign file, which also warns). ``save()`` needs ``writable``.
    """

    def __init__(self, path, uuid: str, window: int, *, writable: bool, fsync: bool = False):
        self.path, self.uuid, self.window = os.fspath(path), str(uuid), int(window)
        self.writable, self.fsync = writable, fsync
        self._fd: int | None = None
        self._seq = 0
        if writable:
            self._open_for_saving()

    def _open_for_saving(self) -> None:
        not_regular = SamplerError(f"{self.path} is not a regular file, so prioritized replay cannot keep its "
                                   "priorities there; move it away and make the sampler again")
        try:
            fd = layer().open_write(self.path, create=True)
        except IsADirectoryError:
            raise not_regular from None
        except OSError as e:
            if e.errno == errno.ELOOP:  # never write through a link into a file outside the store
                raise SamplerError(f"{self.path} is a symbolic link, so prioritized replay will not write its "
                                   "priorities there (it would overwrite the file it points to); remove the link "
                                   "and make the sampler again") from None
            raise
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise not_regular
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise SamplerError(
                    f"a prioritized Sampler is already attached to {self.path[:-len('.priorities')]} (it holds "
                    f"{self.path}); close it (sampler.close()) before making another on the same writable store"
                ) from None
        except BaseException:
            layer().close(fd)
            raise
        self._fd = fd

    # ------------------------------------------------------------------ loading
    def load(self) -> Saved | None:
        fd = self._fd
        problem, saved = None, None
        if fd is None:
            try:
                fd = layer().open_read(self.path)
            except FileNotFoundError:
                return None
            except IsADirectoryError:
                fd, problem = None, "is not a regular file"
            except OSError as e:
                if e.errno != errno.ELOOP:
                    raise
                fd, problem = None, "is a symbolic link (never followed out of the store)"
        if fd is not None:
            try:
                for _ in range(_READ_TRIES):
                    problem, saved, retry = self._read(fd)
                    if not retry:
                        break
            finally:
                if fd != self._fd:
                    layer().close(fd)
        if problem is not None:
            warnings.warn(f"{self.path} {problem}; prioritized replay starts every row at the maximum "
                          "priority instead" + (" and overwrites that file" if self.writable else ""),
                          RuntimeWarning, stacklevel=4)
            if self.writable:
                self._initialize()
            return None
        if self.writable and saved is None:  # new, empty, or its making was interrupted
            self._initialize()
        if saved is not None:
            self._seq = saved.seq
        return saved

    def _read(self, fd: int) -> tuple[str | None, Saved | None, bool]:
        """``(what is wrong, None, retry?)`` or ``(None, the newest valid save or None, False)``."""
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return "is not a regular file", None, False
        head = os.pread(fd, _HEAD.size + _CRC.size, 0)
        if not head.strip(b"\0"):
            return None, None, False  # empty: made but never saved to (or its making was interrupted)
        if len(head) < _HEAD.size + _CRC.size or not head.startswith(MAGIC):
            return "is not a replaystore priority file (no magic bytes at its start)", None, False
        magic, version, window, uuid = _HEAD.unpack_from(head)
        if _CRC.unpack_from(head, _HEAD.size)[0] != zlib.crc32(head[:_HEAD.size]):
            return "is damaged (its header checksum does not match)", None, False
        if version != VERSION:
            return f"is format version {version}; this replaystore reads version {VERSION}", None, False
        uuid = uuid.rstrip(b"\0").decode("utf-8", "replace")
        if uuid != self.uuid:
            return f"belongs to another store (uuid {uuid}, this store's is {self.uuid})", None, False
        if window != self.window:
            return f"was made for a window of {window} rows, the store's is {self.window}", None, False
        if st.st_size < _slot_offset(window, 2):
            return f"is damaged (truncated to {st.st_size} bytes, expected {_slot_offset(window, 2)})", None, False
        best, written, bad = None, False, None
        for slot in (0, 1):
            off = _slot_offset(window, slot)
            sh = os.pread(fd, _SLOT.size + _CRC.size, off)
            seq, rows, count, max_p = _SLOT.unpack_from(sh)
            if seq == 0:
                continue  # never written
            written = True
            if count > window or count > rows or not (max_p > 0 and np.isfinite(max_p)):
                continue
            data = os.pread(fd, 4 * count, off + _SLOT_DATA)
            if len(data) != 4 * count or _CRC.unpack_from(sh, _SLOT.size)[0] != zlib.crc32(data, zlib.crc32(sh[:_SLOT.size])):
                continue  # torn by a kill during its save, or damaged: the other slot holds the last good one
            raw = np.frombuffer(data, "<f4").astype(np.float64)
            wrong = ~(np.isfinite(raw) & (raw > 0))
            if wrong.any() or not max_p <= MAX_PRIORITY:
                # checksummed, so not torn: written so by another program (or a replaystore before the
                # write-side check). NaN or -1 would make every sample() raise, and 0 would silently
                # never draw a row: the file is damaged.
                i = int(np.flatnonzero(wrong)[0]) if wrong.any() else -1
                bad = (f"is damaged: slot {slot} holds priority {float(raw[i])!r} at leaf {i}" if i >= 0 else
                       f"is damaged: slot {slot} holds max priority {max_p!r}") + \
                    f" (priorities must be finite, positive and at most {MAX_PRIORITY:.7g})"
                continue
            if best is None or seq > best.seq:
                best = Saved(raw, int(rows), float(max_p), int(seq))
        if bad is not None:
            return bad, None, False
        if best is None and written:
            return "is damaged (no slot with a valid checksum)", None, True
        return None, best, False

    # ------------------------------------------------------------------ saving
    def _initialize(self) -> None:
        """Make the file an empty priority file for this store, in place (the lock stays held)."""
        fd, files = self._fd, layer()
        # Emptied first, so that no step of this, interrupted, pairs this store's header with
        # another store's (or another window's) priorities; an all-zero file reads as empty.
        files.truncate(fd, 0)
        files.truncate(fd, _slot_offset(self.window, 2))
        files.pwrite(fd, _header(self.window, self.uuid), 0)
        self._seq = 0
        if self.fsync:
            files.fsync(fd)
            files.fsync_dir(self.path)  # a new file's name survives a power cut only once its folder is synced

    def save(self, raw: np.ndarray, rows: int, max_priority: float) -> None:
        """Save raw priorities by leaf (the first ``min(window, rows)``) as the newest slot."""
        if self._fd is None:
            raise SamplerError(f"save: {self.path} was opened read-only (a sampler over a reader) or is closed")
        count = min(self.window, int(rows))
        data = np.ascontiguousarray(raw[:count], "<f4")
        seq = self._seq + 1
        off = _slot_offset(self.window, seq % 2)
        head = _SLOT.pack(seq, int(rows), count, float(max_priority))
        crc = zlib.crc32(data, zlib.crc32(head))
        # Data first, header last: until the header is whole, this slot fails its checksum.
        files = layer()
        files.pwrite(self._fd, data, off + _SLOT_DATA)
        files.pwrite(self._fd, head + _CRC.pack(crc), off)
        if self.fsync:
            files.fsync(self._fd)
        self._seq = seq

    def close(self) -> None:
        if self._fd is not None:
            layer().close(self._fd)  # releases the flock
            self._fd = None

