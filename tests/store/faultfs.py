"""A file layer that records what the store writes, and the disk a power cut would leave.

Modelled on LevelDB's fault-injection env (which keeps each file's state as of its last sync
and drops the rest) and SQLite's crash tests (which also keep a random part of the unsynced
sectors). ``RecordingLayer`` passes every operation through to the real files and logs it;
``Disk`` replays a prefix of that log and says what a crash at that point leaves on disk:

- a file keeps the bytes it had at its last ``fsync``; of the 4 KiB pages written since (pwrite,
  truncate, a whole file a library wrote), each is kept or lost (``keep`` decides: all lost,
  LevelDB's model, or a random part, SQLite's);
- a name (a new file or folder, a rename of either, a hard link, an unlink, a removed folder)
  survives only once the folder holding it was fsynced after it; until then that folder holds
  what it held at its last fsync. Each folder is its own record of names (as an inode is): a
  folder renamed carries its names along, and a rename from one folder to another is durable
  in each folder separately (fsync both; a cut between may leave the name in both or neither).
  Hard links name one file: its bytes are the same under each name;
- ``in_order=True`` is the weaker promise of ``fsync=False``: the disk holds every operation
  before the crash point in order (what a kill -9 leaves), the last one torn to whole pages.

What the model assumes: fsync of a file makes its bytes and length durable but not its name;
fsync of a folder makes its current names durable (not its subfolders' names); nothing
unsynced survives in part of a name (an entry is there or not), and unsynced names are all
lost at a power cut (LevelDB's model; journaling file systems keep more, never less). Folders
the log never made (the test's own folders) are taken as durable.

What the simulation covers: every write the store makes, since all go through its file layer:
commit record slots and files, the manifest, segment skeletons and compacted segments (built in
memory by h5py, written as bytes), rows pwritten into segments, ``.sums``,
priorities, the run record, fsyncs, and creation: the private folder, its lock files, the
folder renamed into place, the record renamed, the manifest linked, the private folder swept.
Reads are not recorded.
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

    def _moved(self, src, dst):
        s, d = self._rel(src), self._rel(dst)
        for key in [k for k in self._names if k == s or k.startswith(s + os.sep)]:
            self._names[d + key[len(s):]] = self._names.pop(key)
        self.log.append(("rename", s, d))

    def replace(self, src, dst):
        super().replace(src, dst)
        self._moved(src, dst)

    def rename(self, src, dst):
        super().rename(src, dst)
        self._moved(src, dst)

    def link(self, src, dst):
        super().link(src, dst)
        self._names[self._rel(dst)] = self._known(src)
        self.log.append(("link", self._rel(src), self._rel(dst)))

    def mkdir(self, path, mode=0o777):
        super().mkdir(path, mode)
        self.log.append(("mkdir", self._rel(path)))

    def rmdir(self, path):
        super().rmdir(path)
        self.log.append(("rmdir", self._rel(path)))

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


@dataclass
class _Folder:
    names: dict = field(default_factory=dict)    # name -> file id (int) or _Folder, as now
    durable: dict = field(default_factory=dict)  # as at the folder's last fsync


class Disk:
    """The state of the recorded files after the first ``k`` operations, replayed one by one."""

    def __init__(self, log: list[tuple]):
        self.log = log
        self.k = 0
        self.files: dict[int, _File] = {}
        self.root = _Folder()
        self._before = None                 # (file, offset, bytes) the last write overwrote

    def advance(self, k: int) -> None:
        while self.k < k:
            self._apply(self.log[self.k])
            self.k += 1

    def _folder(self, rel: str) -> _Folder:
        """The folder at ``rel`` now; one the log never made is taken as there and durable."""
        d = self.root
        for part in (p for p in rel.split(os.sep) if p not in ("", ".")):
            if not isinstance(d.names.get(part), _Folder):
                d.names[part] = d.durable[part] = _Folder()
            d = d.names[part]
        return d

    def _parent(self, rel: str) -> tuple[_Folder, str]:
        head, name = os.path.split(rel)
        return self._folder(head), name

    def _apply(self, op: tuple) -> None:
        kind = op[0]
        if kind == "create":
            self.files[op[2]] = _File()
            d, name = self._parent(op[1])
            d.names[name] = op[2]
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
            d = self._folder(op[1])
            d.durable = dict(d.names)
        elif kind == "mkdir":
            d, name = self._parent(op[1])
            d.names[name] = _Folder()
        elif kind == "rename":
            (src, sn), (dst, dn) = self._parent(op[1]), self._parent(op[2])
            dst.names[dn] = src.names.pop(sn)
        elif kind == "link":
            (src, sn), (dst, dn) = self._parent(op[1]), self._parent(op[2])
            dst.names[dn] = src.names[sn]
        elif kind in ("unlink", "rmdir"):
            d, name = self._parent(op[1])
            del d.names[name]
        else:
            raise ValueError(f"unknown operation {kind!r}")

    def _walk(self, durable: bool, d=None, prefix=""):
        """(path, file id or None for a folder) of every name reachable from the root."""
        for name, node in ((d or self.root).durable if durable else (d or self.root).names).items():
            path = os.path.join(prefix, name)
            if isinstance(node, _Folder):
                yield path, None
                yield from self._walk(durable, node, path)
            else:
                yield path, node

    def after_power_cut(self, keep) -> dict[str, bytes]:
        """path -> bytes left on disk (a folder as ``path/`` -> b""): the names durable in folders
        reachable through durable names, synced bytes, and each unsynced page (and length change)
        where ``keep()`` says so, the same for every name of a file."""
        out, content = {}, {}
        for path, fid in self._walk(durable=True):
            if fid is None:
                out[path + "/"] = b""
            else:
                if fid not in content:
                    content[fid] = self._content(self.files[fid], keep)
                out[path] = content[fid]
        return out

    def after_kill(self, torn_keep=None) -> dict[str, bytes]:
        """path -> bytes (a folder as ``path/`` -> b"") if every operation so far reached the disk;
        with ``torn_keep``, the last operation (a write) lands only in the pages it picks."""
        names = list(self._walk(durable=False))
        out = {p + "/" if fid is None else p: b"" if fid is None else bytes(self.files[fid].data) for p, fid in names}
        if torn_keep is not None and self.k:
            op = self.log[self.k - 1]
            if op[0] == "write":
                paths = [p for p, fid in names if fid == op[1]]
                if paths:
                    before = bytearray(out[paths[0]])
                    at, data = op[2], op[3]
                    for page in range(at // PAGE, -(-(at + len(data)) // PAGE)):
                        if not torn_keep():
                            lo, hi = max(at, page * PAGE), min(at + len(data), (page + 1) * PAGE)
                            before[lo:hi] = self._before[2][lo - at:hi - at]
                    for p in paths:
                        out[p] = bytes(before)
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


def materialize(files: dict[str, bytes], root: str) -> None:
    """Write ``files`` (relative path -> bytes; ``path/`` a folder) below the folder ``root``."""
    os.makedirs(root, exist_ok=True)
    for rel, data in files.items():
        p = os.path.join(root, rel)
        if rel.endswith("/"):
            os.makedirs(p, exist_ok=True)
            continue
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as f:
            f.write(data)


def fingerprint(files: dict[str, bytes]) -> bytes:
    h = hashlib.blake2b(digest_size=16)
    for rel in sorted(files):
        h.update(rel.encode() + b"\0" + len(files[rel]).to_bytes(8, "little"))
        h.update(files[rel])
    return h.digest()
