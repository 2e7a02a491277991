"""The store's one file layer, and small files read safely.

Every write, fsync, rename, link, unlink, mkdir and open of a file or folder the store (or a run,
a sampler's priorities, the agent's checkpoints) writes goes through one ``FileLayer`` (LevelDB's
``Env`` is the model): fsync, rename and cleanup live here once, and a test swaps the layer
(``use_layer``) for one that records every operation and drops what was not synced at a chosen
crash point (``tests/store/faultfs.py``). Files are opened without following a symlink in their last
component, and temporary files are made fresh (``O_EXCL``) after removing any leftover, so a
link planted at ``<store>.commit.tmp`` or ``<store>.priorities`` never makes the store write the
file it points to.

Besides: regular files only (a FIFO never hangs a read), errors that name the errno, and the
writer's identity (pid, host) with a liveness check.
"""

from __future__ import annotations

import errno as _errno
import os
import socket
import stat
from contextlib import contextmanager

from ..errors import DamagedStoreError, StoreWriteError

MAX_RECORD_BYTES = 256 * 1024 * 1024
ROWS_STAGED = "Rows accepted so far stay staged: free space and call commit() again, or close() to keep what is committed"
UNCHANGED = "The file that was there before is unchanged: free space and try again"

_NOFOLLOW = os.O_NOFOLLOW | os.O_CLOEXEC


class FileLayer:
    """The operations the store performs on its own files. Subclass it to observe or fault them;
    pass one to ``use_layer`` (tests) or set it with ``set_layer``.

    Paths name files only the store writes: none of them follows a symlink at its last component
    (``ELOOP`` instead). ``replacing``/``write_atomic`` build the one atomic replace on these.
    """

    # ---------------------------------------------------------------- primitives
    def open_read(self, path: str) -> int:
        """A read-only descriptor; non-blocking, so a FIFO at the path is never waited on (the caller
        checks, with fstat, that it holds a regular file)."""
        return os.open(path, os.O_RDONLY | os.O_NONBLOCK | _NOFOLLOW)

    def open_write(self, path: str, create: bool = False) -> int:
        """A read-write descriptor of an existing file (or a new empty one with ``create``), in place."""
        return os.open(path, os.O_RDWR | os.O_NONBLOCK | _NOFOLLOW | (os.O_CREAT if create else 0), 0o644)

    def create_new(self, path: str) -> int:
        """A new, empty file at ``path`` made by this call: a leftover there (a file or a planted link) is
        removed first, and ``O_EXCL`` refuses anything that appears in between."""
        self.remove(path)
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o644)

    def pwrite(self, fd: int, data, offset: int) -> None:
        """Write all of ``data`` at ``offset`` (``os.pwrite`` may write less than asked)."""
        view = memoryview(data).cast("B")
        while view:
            n = os.pwrite(fd, view, offset)
            view, offset = view[n:], offset + n

    def truncate(self, fd: int, length: int) -> None:
        os.ftruncate(fd, length)

    def fsync(self, fd: int) -> None:
        os.fsync(fd)

    def fsync_dir(self, path: str) -> None:
        """Make the directory entries of the folder holding ``path`` durable (renames, new files)."""
        dfd = os.open(os.path.dirname(os.path.abspath(path)) or ".", os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)

    def replace(self, src: str, dst: str) -> None:
        """Rename ``src`` over ``dst`` (a link at ``dst`` is replaced, never followed)."""
        os.replace(src, dst)

    def remove(self, path: str) -> bool:
        """Remove ``path`` (a link itself, not what it points to); False if it was not there."""
        try:
            os.remove(path)
        except FileNotFoundError:
            return False
        return True

    def close(self, fd: int) -> None:
        os.close(fd)

    # ---------------------------------------------------------------- folders and names
    def mkdir(self, path: str, mode: int = 0o777) -> None:
        """Make the folder ``path`` (``FileExistsError`` if anything is there)."""
        os.mkdir(path, mode)

    def makedirs(self, path: str) -> None:
        """Make ``path`` and any missing folder above it, each through ``mkdir``; a folder already
        there is fine."""
        path = os.path.abspath(path)
        if os.path.isdir(path):
            return
        self.makedirs(os.path.dirname(path))
        try:
            self.mkdir(path)
        except FileExistsError:
            if not os.path.isdir(path):
                raise

    def rename(self, src: str, dst: str) -> None:
        """Rename the folder (or file) ``src`` to ``dst``; a folder is never renamed over a non-empty
        one (``ENOTEMPTY``/``EEXIST``), which is what makes a folder rename a claim."""
        os.rename(src, dst)

    def link(self, src: str, dst: str) -> None:
        """A second name ``dst`` for the file ``src``; ``FileExistsError`` if ``dst`` exists (a claim)."""
        os.link(src, dst, follow_symlinks=False)

    def rmdir(self, path: str) -> None:
        os.rmdir(path)

    def listdir(self, path: str) -> list[str]:
        return os.listdir(path)

    def rmtree(self, path: str) -> None:
        """Remove the folder ``path`` and everything below it, each name through ``remove``/``rmdir``
        (a link is removed, never followed); names already gone are skipped."""
        try:
            names = self.listdir(path)
        except (FileNotFoundError, NotADirectoryError):
            return
        for name in names:
            p = os.path.join(path, name)
            try:
                st = os.lstat(p)
            except FileNotFoundError:
                continue
            if stat.S_ISDIR(st.st_mode):
                self.rmtree(p)
            else:
                self.remove(p)
        try:
            self.rmdir(path)
        except FileNotFoundError:
            pass

    # ---------------------------------------------------------------- the one atomic replace
    @contextmanager
    def replacing(self, tmp: str, final: str, fsync: bool, doing: str, then: str = ROWS_STAGED):
        """Around the writing of the whole new file ``tmp`` (any leftover there is removed first): then
        rename it over ``final``. With ``fsync``, its bytes reach the disk before the rename and the
        rename after, so after a power cut readers see the old file or the new one; without, after a
        kill. On a failure ``tmp`` is removed and a ``StoreWriteError`` says what ``doing`` failed."""
        try:
            self.remove(tmp)
            yield
            if fsync:
                fd = self.open_read(tmp)
                try:
                    self.fsync(fd)
                finally:
                    self.close(fd)
            self.replace(tmp, final)
            if fsync:
                self.fsync_dir(final)
        except (OSError, RuntimeError, ValueError) as e:  # h5py reports a full disk as OSError or RuntimeError
            try:
                self.remove(tmp)
            except OSError:
                pass
            raise write_error(doing, e, then) from e

    def write_atomic(self, path: str, data: bytes, fsync: bool, what: str, tmp: str | None = None,
                     then: str = ROWS_STAGED) -> None:
        """Write ``data`` to a fresh temporary file (``tmp``, default ``<path>.tmp``) and rename it over
        ``path``: readers see the old bytes or the new ones, never a mix."""
        tmp = f"{path}.tmp" if tmp is None else tmp
        with self.replacing(tmp, path, fsync, f"writing the {what} {path}", then):
            fd = self.create_new(tmp)
            try:
                self.pwrite(fd, data, 0)
            finally:
                self.close(fd)


_layer = FileLayer()


def layer() -> FileLayer:
    """The file layer every store operation uses now."""
    return _layer


def set_layer(new: FileLayer) -> FileLayer:
    """Make ``new`` the file layer; returns the one it replaces."""
    global _layer
    if not isinstance(new, FileLayer):
        raise TypeError(f"set_layer: expected a FileLayer (or a subclass), got {type(new).__name__}")
    old, _layer = _layer, new
    return old


@contextmanager
def use_layer(new: FileLayer):
    """``with use_layer(recording): ...`` runs the block with ``new`` as the file layer."""
    old = set_layer(new)
    try:
        yield new
    finally:
        set_layer(old)


def write_atomic(path: str, data: bytes, fsync: bool, what: str, tmp: str | None = None,
                 then: str = ROWS_STAGED) -> None:
    _layer.write_atomic(path, data, fsync, what, tmp, then)


def replacing(tmp: str, final: str, fsync: bool, doing: str):
    return _layer.replacing(tmp, final, fsync, doing)


def fsync_dir(path: str) -> None:
    _layer.fsync_dir(path)


def read_regular_file(path: str, what: str, limit: int = MAX_RECORD_BYTES) -> tuple[bytes, os.stat_result] | None:
    """The bytes of a regular file, or None if absent. Never blocks: a FIFO is opened non-blocking
    and refused, like any other special file; a symlink is refused, not followed."""
    try:
        fd = _layer.open_read(path)
    except FileNotFoundError:
        return None
    except OSError as e:
        if e.errno == _errno.ELOOP:
            raise DamagedStoreError(f"{what} {path} is a symbolic link; a store keeps only regular files there "
                                    "and never follows a link out of itself: replace it with the file") from e
        raise DamagedStoreError(f"{what} {path} cannot be opened ({e.strerror}, errno {e.errno})") from e
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise DamagedStoreError(f"{what} {path} is not a regular file (mode {stat.filemode(st.st_mode)}); "
                                    "remove it: a store keeps only regular files there")
        if st.st_size > limit:
            raise DamagedStoreError(f"{what} {path} is {st.st_size} bytes, more than any {what} ({limit})")
        chunks, left = [], st.st_size
        while True:
            b = os.read(fd, max(left, 65536))
            if not b:
                break
            chunks.append(b)
            left -= len(b)
        return b"".join(chunks), st
    finally:
        _layer.close(fd)


def write_error(doing: str, e: BaseException, then: str = ROWS_STAGED) -> StoreWriteError:
    no = getattr(e, "errno", None)
    hint = {28: "the disk is full", 27: "the file size limit (ulimit -f) was reached",
            122: "the disk quota is exceeded"}.get(no, "an I/O error")
    return StoreWriteError(no, f"{doing} failed: {hint} ({e}). {then}")


def this_writer(state: str) -> dict:
    return {"pid": os.getpid(), "host": socket.gethostname(), "state": state}


def writer_alive(writer: dict) -> bool:
    """Whether the writer named in a record is still running (same host only; else assume alive)."""
    if writer.get("state") != "open":
        return False
    if writer.get("host") != socket.gethostname():
        return True
    try:
        pid = int(writer.get("pid", -1))
    except (TypeError, ValueError):
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return pid > 0
    # A zombie (killed, not yet reaped by its parent) still answers kill(0): look at its state.
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] not in (b"Z", b"X")
    except OSError:
        return True
