"""The commit record: ``<store>.commit``, a small JSON file replaced atomically at every commit.

It holds everything a reader needs without opening HDF5 (which a live writer locks): the
committed row count of each table, the byte offset of every chunk that holds committed rows,
the schema, the actor vocabulary and counts, and the writer's state. The writer writes it only
after the HDF5 flush (and fsync, when asked) has returned, so every row it counts is on disk.
"""

from __future__ import annotations

import base64
import json
import os
import socket
from dataclasses import dataclass, field

import numpy as np

from ._format import FORMAT_NAME, FORMAT_VERSION
from ._schema import Schema
from .errors import FormatVersionError, NotAStoreError

SUFFIX = ".commit"


def record_path(path) -> str:
    return os.fspath(path) + SUFFIX


def _pack(offsets: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(offsets, dtype="<i8").tobytes()).decode("ascii")


def _unpack(text: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype="<i8").astype(np.int64)


@dataclass
class TableRecord:
    schema_json: str
    rows: int
    # per stored column: (rows_per_chunk, chunk byte offsets as int64)
    chunks: dict[str, tuple[int, np.ndarray]] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {
            "schema": self.schema_json,
            "rows": self.rows,
            "chunks": {k: [rpc, _pack(off)] for k, (rpc, off) in self.chunks.items()},
        }

    @classmethod
    def from_json(cls, d: dict) -> "TableRecord":
        return cls(d["schema"], int(d["rows"]), {k: (int(v[0]), _unpack(v[1])) for k, v in d["chunks"].items()})


@dataclass
class CommitRecord:
    uuid: str
    seq: int
    attrs: dict  # schema, actors, window, metadata, created, chunk_bytes (all JSON-able)
    tables: dict[str, TableRecord]
    actor_counts: list[int]
    writer: dict  # pid, host, state ('open' | 'closed')
    h5_inode: int = 0
    recovery: dict | None = None
    checkpoints: list = field(default_factory=list)
    extra: dict = field(default_factory=dict)  # room for other parts of store (e.g. priorities)

    def to_json(self) -> str:
        return json.dumps({
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "uuid": self.uuid,
            "seq": self.seq,
            "attrs": self.attrs,
            "tables": {k: t.to_json() for k, t in self.tables.items()},
            "actor_counts": self.actor_counts,
            "writer": self.writer,
            "h5_inode": self.h5_inode,
            "recovery": self.recovery,
            "checkpoints": self.checkpoints,
            "extra": self.extra,
        })

    @classmethod
    def from_json(cls, text: str, where: str) -> "CommitRecord":
        try:
            d = json.loads(text)
        except json.JSONDecodeError as e:
            raise NotAStoreError(f"{where}: commit record is not valid JSON ({e})") from e
        if not isinstance(d, dict) or d.get("format") != FORMAT_NAME:
            raise NotAStoreError(f"{where}: not a replaystore commit record")
        check_version(d.get("format_version"), where)
        try:
            return cls(
                uuid=d["uuid"], seq=int(d["seq"]), attrs=d["attrs"],
                tables={k: TableRecord.from_json(t) for k, t in d["tables"].items()},
                actor_counts=list(d["actor_counts"]), writer=d["writer"], h5_inode=int(d.get("h5_inode", 0)),
                recovery=d.get("recovery"), checkpoints=list(d.get("checkpoints", [])), extra=d.get("extra", {}),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise NotAStoreError(f"{where}: commit record is damaged ({type(e).__name__}: {e})") from e

    def bytes_needed(self) -> int:
        """The file length that every committed row lies within."""
        end = 0
        for t in self.tables.values():
            if t.rows == 0:
                continue
            schema = Schema.from_json(t.schema_json)
            for name, (rpc, offsets) in t.chunks.items():
                last = t.rows - 1
                end = max(end, int(offsets[last // rpc]) + (last % rpc + 1) * schema[name].row_bytes)
        return end


def check_version(version, where: str) -> None:
    if version != FORMAT_VERSION:
        raise FormatVersionError(
            f"{where} was written in replaystore format version {version!r}; this replaystore reads "
            f"version {FORMAT_VERSION}. Open it with a replaystore release that knows version {version!r}."
        )


# A record's signature: (inode, mtime, size) from one fstat, plus its first bytes, which hold
# "seq". File timestamps tick with the kernel's coarse clock (milliseconds) and inode numbers are
# reused at once, so two commits close together can share inode, mtime and size; the seq cannot.
_HEAD = 160


def _signature(st: os.stat_result, head: bytes) -> tuple:
    return (st.st_ino, st.st_mtime_ns, st.st_size, head[:_HEAD])


def read_record(path) -> tuple[CommitRecord, tuple] | None:
    """The record and its signature (to tell whether it changed), or None if absent."""
    p = record_path(path)
    try:
        with open(p, "rb") as f:
            st = os.fstat(f.fileno())
            text = f.read()
    except FileNotFoundError:
        return None
    return CommitRecord.from_json(text.decode("utf-8"), p), _signature(st, text)


def record_signature(path) -> tuple | None:
    """The current record's signature: one open, fstat and short read (a few microseconds)."""
    try:
        fd = os.open(record_path(path), os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        return _signature(os.fstat(fd), os.read(fd, _HEAD))
    finally:
        os.close(fd)


def write_record(path, record: CommitRecord, fsync: bool) -> None:
    """Write to a temporary file and rename over the record: readers see the old or the new one."""
    p = record_path(path)
    tmp = f"{p}.tmp"
    data = record.to_json().encode("utf-8")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, data)
        if fsync:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, p)
    if fsync:
        dfd = os.open(os.path.dirname(os.path.abspath(p)) or ".", os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


def this_writer(state: str) -> dict:
    return {"pid": os.getpid(), "host": socket.gethostname(), "state": state}


def writer_alive(writer: dict) -> bool:
    """Whether the writer named in a record is still running (same host only; else assume alive)."""
    if writer.get("state") != "open":
        return False
    if writer.get("host") != socket.gethostname():
        return True
    pid = int(writer.get("pid", -1))
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (killed, not yet reaped by its parent) still answers kill(0): look at its state.
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] not in (b"Z", b"X")
    except OSError:
        return True
