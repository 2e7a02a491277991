"""A file layer that records what the store writes, and the disk a power cut would leave.

Modelled on LevelDB's fault-injection env (which keeps each file's state as of its last sync
and drops the rest) and SQLite's crash tests (which also keep a random part of the unsynced
sectors). ``RecordingLayer`` passes every operation through to the real files and logs it;
``Disk`` replays a prefix of that log and says what a crash at that point leaves on disk:

- a file keeps the bytes it had at its last ``fsync``; of the 4 KiB pages written since (pwrite,
  truncate, a whole file a library wrote), each is kept or lost (``keep`` decides: all lost,
  LevelDB's model, or a random part, SQLite's);
- a name (a new file, a rename, an unlink) survives only once its folder was fsynced after it;
  until then the folder holds what it held at its last fsync;
- ``in_order=True`` is the weaker promise of ``fsync=False``: the disk holds every operation
  before the crash point in order (what a kill -9 leaves), the last one torn to whole pages.

What the simulation covers: every write the store makes, since all go through its file layer:
commit record slots and files, the manifest (built in memory by h5py, written as bytes), segment
skeletons and compacted segments (h5py writes them through ``FileLayer.file``, a file object
whose writes are the layer's pwrites), rows pwritten into segments, ``.sums``, priorities, the
run record, fsyncs, renames, unlinks. Folders are taken as durable (``mkdir`` of the store's
folder is not simulated); reads are not recorded.
"""

from __future__ import annotations

import hashlib
import os
import random
from dataclasses import dataclass, field

from replaystore.store import FileLayer

PAGE = 4096


class RecordingLayer(FileLayer):
    """The real file layer, logging each operation on files below ``root`` (as relative paths,
    files named by an id so that a rename carries the content)."""

    def __init__(self, root: str):
        self.root = os.path.abspath(root)
        self.log: list[tuple] = []
        self._names: dict[str, int] = {}   # relative path -> file id, as on the real disk
        self._fds: dict[int, int] = {}     # open descriptor -> file id
        self._next = 0

    def _rel(self, path: str) -> str:
        return os.path.relpath(os.path.abspath(path), self.root)

    def _new(self, path: str) -> int:
        self._next += 1
        self._names[self._rel(path)] = self._next
        self.log.append(("create", self._rel(path), self._next))
        return self._next

    def _known(self, path: str) -> int:
        rel = self._rel(path)
        return self._names[rel] if rel in self._names else self._new(path)

    # ---------------------------------------------------------------- opens
    def open_read(self, path):
        fd = super().open_read(path)
        if self._rel(path) in self._names:
            self._fds[fd] = self._names[self._rel(path)]
        return fd

    def open_write(self, path, create=False):
        existed = os.path.lexists(path)
        fd = super().open_write(path, create)
        self._fds[fd] = self._known(path) if existed else self._new(path)
        return fd

    def create_new(self, path):
        fd = super().create_new(path)
        self._fds[fd] = self._new(path)
        return fd

    def close(self, fd):
        self._fds.pop(fd, None)
        super().close(fd)

    # ---------------------------------------------------------------- writes
    def pwrite(self, fd, data, offset):
        super().pwrite(fd, data, offset)
        self.log.append(("write", self._fds[fd], offset, bytes(memoryview(data).cast("B"))))

    def truncate(self, fd, length):
        super().truncate(fd, length)
        self.log.append(("truncate", self._fds[fd], length))

    def fsync(self, fd):
        super().fsync(fd)
        if fd in self._fds:
            self.log.append(("fsync", self._fds[fd]))

    def fsync_dir(self, path):
        super().fsync_dir(path)
        self.log.append(("fsync_dir", os.path.dirname(self._rel(path))))

    def replace(self, src, dst):
        super().replace(src, dst)
        fid = self._names.pop(self._rel(src))
        self._names[self._rel(dst)] = fid
        self.log.append(("rename", self._rel(src), self._rel(dst)))

    def remove(self, path):
        gone = super().remove(path)
        if gone:
            self._names.pop(self._rel(path), None)
            self.log.append(("unlink", self._rel(path)))
        return gone

    def mark(self) -> int:
        """The crash point just after everything logged so far."""
        return len(self.log)


@dataclass
class _File:
    data: bytearray = field(default_factory=bytearray)
    synced: bytes = b""
    dirty: set = field(default_factory=set)  # pages written since the last fsync

    def touch(self, start: int, stop: int) -> None:
        self.dirty.update(range(start // PAGE, -(-stop // PAGE)))


class Disk:
    """The state of the recorded files after the first ``k`` operations, replayed one by one."""

    def __init__(self, log: list[tuple]):
        self.log = log
        self.k = 0
        self.files: dict[int, _File] = {}
        self.names: dict[str, int] = {}     # what the folders hold now
        self.durable: dict[str, int] = {}   # what they held at their last fsync
        self._before = None                 # (file, offset, bytes) the last write overwrote

    def advance(self, k: int) -> None:
        while self.k < k:
            self._apply(self.log[self.k])
            self.k += 1

    def _apply(self, op: tuple) -> None:
        kind = op[0]
        if kind == "create":
            self.files[op[2]] = _File()
            self.names[op[1]] = op[2]
        elif kind == "write":
            f, at, data = self.files[op[1]], op[2], op[3]
            old = bytes(f.data[at:at + len(data)])
            self._before = (op[1], at, old + bytes(len(data) - len(old)))  # for tearing this write
            if len(f.data) < at:
                f.data.extend(bytes(at - len(f.data)))
            f.data[at:at + len(data)] = data
            f.touch(at, at + len(data))
        elif kind == "truncate":
            f, n = self.files[op[1]], op[2]
            old = len(f.data)
            del f.data[n:]
            f.data.extend(bytes(n - len(f.data)))
            f.touch(min(old, n), max(old, n))
        elif kind == "fsync":
            f = self.files[op[1]]
            f.synced, f.dirty = bytes(f.data), set()
        elif kind == "fsync_dir":
            folder = op[1]
            for p in {p for p in (*self.names, *self.durable) if os.path.dirname(p) == folder}:
                if p in self.names:
                    self.durable[p] = self.names[p]
                else:
                    self.durable.pop(p, None)
        elif kind == "rename":
            self.names[op[2]] = self.names.pop(op[1])
        elif kind == "unlink":
            del self.names[op[1]]
        else:
            raise ValueError(f"unknown operation {kind!r}")

    def after_power_cut(self, keep) -> dict[str, bytes]:
        """path -> bytes left on disk: durable names, synced bytes, and each unsynced page (and
        length change) where ``keep()`` says so."""
        out = {}
        for path, fid in self.durable.items():
            out[path] = self._content(self.files[fid], keep)
        return out

    def after_kill(self, torn_keep=None) -> dict[str, bytes]:
        """path -> bytes if every operation so far reached the disk; with ``torn_keep``, the last
        operation (a write) lands only in the pages it picks."""
        out = {p: bytes(self.files[fid].data) for p, fid in self.names.items()}
        if torn_keep is not None and self.k:
            op = self.log[self.k - 1]
            if op[0] == "write":
                path = next((p for p, fid in self.names.items() if fid == op[1]), None)
                if path is not None:
                    before = bytearray(out[path])
                    at, data = op[2], op[3]
                    for page in range(at // PAGE, -(-(at + len(data)) // PAGE)):
                        if not torn_keep():
                            lo, hi = max(at, page * PAGE), min(at + len(data), (page + 1) * PAGE)
                            before[lo:hi] = self._before[2][lo - at:hi - at]
                    out[path] = bytes(before)
        return out

    @staticmethod
    def _content(f: _File, keep) -> bytes:
        if not f.dirty:
            return f.synced
        length = len(f.data) if len(f.data) != len(f.synced) and keep() else len(f.synced)
        out = bytearray(f.synced[:length])
        out.extend(bytes(length - len(out)))
        for page in sorted(f.dirty):
            lo, hi = page * PAGE, min((page + 1) * PAGE, length)
            if lo < hi and keep():
                src = f.data[lo:hi]
                out[lo:lo + len(src)] = src
        return bytes(out)


def never() -> bool:
    """LevelDB's model: every unsynced page is lost."""
    return False


def coin(rng: random.Random):
    """SQLite's: each unsynced page is kept or lost at random."""
    return lambda: rng.random() < 0.5


def materialize(files: dict[str, bytes], root: str, folders=()) -> None:
    """Write ``files`` (relative path -> bytes) below the empty folder ``root``, with ``folders``
    (folders are taken as durable once made)."""
    for rel in folders:
        os.makedirs(os.path.join(root, rel), exist_ok=True)
    for rel, data in files.items():
        p = os.path.join(root, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as f:
            f.write(data)


def fingerprint(files: dict[str, bytes]) -> bytes:
    h = hashlib.blake2b(digest_size=16)
    for rel in sorted(files):
        h.update(rel.encode() + b"\0" + len(files[rel]).to_bytes(8, "little"))
        h.update(files[rel])
    return h.digest()
