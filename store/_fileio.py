"""Small files read and written safely: regular files only (a FIFO never hangs a read), writes
that land whole (temporary file, fsync when asked, rename), errors that name the errno, and
the writer's identity (pid, host) with a liveness check."""

from __future__ import annotations

import json
import os
import socket
import stat
from contextlib import contextmanager

from .errors import DamagedStoreError, StoreWriteError

MAX_RECORD_BYTES = 256 * 1024 * 1024


def read_regular_file(path: str, what: str, limit: int = MAX_RECORD_BYTES) -> tuple[bytes, os.stat_result] | None:
    """The bytes of a regular file, or None if absent. Never blocks: a FIFO is opened non-blocking
    and refused, like any other special file."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    except OSError as e:
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
        os.close(fd)


def parse_json(data: bytes, what: str, path: str):
    try:
        return json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise DamagedStoreError(f"{what} {path} is damaged: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except json.JSONDecodeError as e:
        raise DamagedStoreError(f"{what} {path} is damaged: not valid JSON ({e.msg} at byte {e.pos})") from None


def write_atomic(path: str, data: bytes, fsync: bool, what: str) -> None:
    """Write to a temporary file and rename it over ``path``: readers see the old or the new one."""
    tmp = f"{path}.tmp"
    with replacing(tmp, path, fsync, f"writing the {what} {path}"):
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)


@contextmanager
def replacing(tmp: str, final: str, fsync: bool, doing: str):
    """Around the writing of the whole file ``tmp``: then rename it over ``final`` (with ``fsync``, its
    bytes reach the disk before the rename and the rename after), so readers see the old file or the
    new one. On a failure ``tmp`` is removed and a ``StoreWriteError`` says what ``doing`` failed."""
    try:
        yield
        if fsync:
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        os.replace(tmp, final)
        if fsync:
            fsync_dir(final)
    except (OSError, RuntimeError, ValueError) as e:  # h5py reports a full disk as OSError or RuntimeError
        discard(tmp)
        raise write_error(doing, e) from e


def discard(tmp: str) -> None:
    """Remove a temporary file that a failed write left, if it is there."""
    try:
        os.remove(tmp)
    except OSError:
        pass


def fsync_dir(path: str) -> None:
    dfd = os.open(os.path.dirname(os.path.abspath(path)) or ".", os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def write_error(doing: str, e: BaseException) -> StoreWriteError:
    no = getattr(e, "errno", None)
    hint = {28: "the disk is full", 27: "the file size limit (ulimit -f) was reached",
            122: "the disk quota is exceeded"}.get(no, "an I/O error")
    return StoreWriteError(no, f"{doing} failed: {hint} ({e}). Rows accepted so far stay staged: free space and "
                               "call commit() again, or close() to keep what is committed")


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
